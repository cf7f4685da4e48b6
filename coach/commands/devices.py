"""``coach devices``: the audio inputs and outputs PortAudio can see, and which are defaults."""

from __future__ import annotations

import argparse
import json
import sys

from coach.audio import AudioUnavailable, Device, list_devices

NO_DEVICES = (
    "no audio devices found (no sound card, or no sound server running); "
    "`coach render` makes an audio file to play elsewhere instead"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``devices`` subcommand."""
    parser = sub.add_parser(
        "devices",
        help="list audio input and output devices",
        description="List the audio devices coach can use, with the index or name to pass to "
        "`coach run --input/--output`. With no device (no sound card or sound server) it says "
        "so on stderr and still exits 0 with empty lists: finding nothing is an answer, not "
        "an error. --json gives {input, output, problem}.",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def _entry(device: Device, kind: str) -> dict[str, object]:
    input_side = kind == "input"
    return {
        "index": device.index,
        "name": device.name,
        "host_api": device.host_api,
        "channels": device.max_input_channels if input_side else device.max_output_channels,
        "default_sample_rate_hz": device.default_sample_rate_hz,
        "default": device.is_default_input if input_side else device.is_default_output,
    }


def run(args: argparse.Namespace) -> int:
    """Print the devices; 0 even when there are none (the reason goes to stderr)."""
    try:
        devices = list_devices()
        problem = "" if devices else NO_DEVICES
    except AudioUnavailable as err:
        devices, problem = [], err.message
    inputs = [_entry(d, "input") for d in devices if d.supports("input")]
    outputs = [_entry(d, "output") for d in devices if d.supports("output")]
    if args.json:
        listing = {"input": inputs, "output": outputs, "problem": problem or None}
        print(json.dumps(listing, indent=2))
    else:
        for title, entries in (("Output devices", outputs), ("Input devices", inputs)):
            print(f"{title}:")
            if not entries:
                print("  (none)")
            for entry in entries:
                mark = "  *default*" if entry["default"] else ""
                print(
                    f"  {entry['index']:>3}  {entry['name']}  ({entry['host_api']}, "
                    f"{entry['channels']} ch, {entry['default_sample_rate_hz']} Hz){mark}"
                )
    if problem:
        print(f"coach: {problem}", file=sys.stderr)
    return 0
