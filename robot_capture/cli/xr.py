"""``robot-capture xr``: serve the headset page; a real VR headset then drives the robot (the xr node)."""
from __future__ import annotations

import argparse
import os
import sys

DESCRIPTION = """\
Serve the headset teleoperation page over HTTPS and publish the headset's poses:
/vr/head, /vr/left_wrist, /vr/right_wrist (PoseStamped), /vr/left_hand, /vr/right_hand
(PoseArray, 26 OpenXR joints), /vr/buttons (Joy), /xr/latency (DiagnosticArray). The page
(WebXR immersive-vr, hand tracking when the headset offers it, else controllers) shows the
station's tally: green ready, red recording with seconds, amber not ready and why.

A station without a certificate makes a self-signed one, once (openssl), in
$ROBOT_CAPTURE_CONFIG/xr or ~/.config/robot_capture/xr; this prints how to trust it on
Quest, PICO and Vision Pro. Any --host but loopback needs the console token (--token or
ROBOT_CAPTURE_CONSOLE_TOKEN), as `console --web` does. One headset drives at a time: a
second one is refused unless --takeover.
"""

EPILOG = """\
examples:
  robot-capture xr --host 0.0.0.0 --token s3cret-token     # headset: https://<station>:8443/?token=s3cret-token
  robot-capture xr                                          # this machine only (https://127.0.0.1:8443/)
  robot-capture xr --host 0.0.0.0 --token s3cret-token --takeover --station a
"""


def add_parser(sub):
    p = sub.add_parser("xr", help="serve the headset page: a real VR headset drives the robot",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8443, help="HTTPS port (default: 8443)")
    p.add_argument("--token", default="", help="access token, required off loopback "
                   "(default: $ROBOT_CAPTURE_CONSOLE_TOKEN)")
    p.add_argument("--takeover", action="store_true", help="a new headset takes over from the driving one")
    p.add_argument("--cert", default="", help="TLS certificate PEM (default: the station's, made once)")
    p.add_argument("--key", default="", help="its private key PEM (with --cert; default: none)")
    p.add_argument("--recorder", default="", help="recorder for the tally (default: /recorder, or /<station>/recorder)")
    p.add_argument("--station", default="", help="station namespace (default: none)")
    return p


def run(args) -> int:
    from robot_capture.cli.episode import recorder_name
    from robot_capture.console.web import WebConfigError, check_bind
    from robot_capture.xr.certs import CertificateError, ensure_certificate, trust_instructions

    def fail(text: str) -> int:
        print(f"robot-capture xr: {text}", file=sys.stderr)
        return 2

    token = args.token or os.environ.get("ROBOT_CAPTURE_CONSOLE_TOKEN", "")
    try:
        check_bind(args.host, token)
        recorder = recorder_name(args.recorder, args.station)
    except (WebConfigError, ValueError) as exc:
        return fail(str(exc))
    if not 0 < args.port < 65536:
        return fail(f"--port {args.port}: must be 1-65535")
    if bool(args.cert) != bool(args.key):
        return fail("give --cert and --key together")
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
        import websockets  # noqa: F401
    except ImportError as exc:
        return fail(f"needs the web extras ({exc.name} is missing): pip install 'robot_capture[xr]'")
    if args.cert:
        cert, key, created = args.cert, args.key, False
        for f in (cert, key):
            if not os.path.isfile(f):
                return fail(f"no such file: {f}")
    else:
        try:
            cert, key, created = ensure_certificate()
        except CertificateError as exc:
            return fail(str(exc))
    shown = args.host if args.host not in ("0.0.0.0", "::") else "<this station's address>"
    url = f"https://{shown}:{args.port}/" + (f"?token={'<token>'}" if token else "")
    print(("made a self-signed certificate: " if created else "certificate: ") + str(cert), file=sys.stderr)
    print(trust_instructions(url, cert), file=sys.stderr, flush=True)
    os.environ["ROBOT_CAPTURE_CONSOLE_TOKEN"] = token  # to the node, never on its command line
    from robot_capture.nodes import xr_node

    ros_args = ["robot-capture", "--ros-args", "-p", f"host:={args.host}", "-p", f"port:={args.port}",
                "-p", f"takeover:={str(args.takeover).lower()}", "-p", f"cert:={cert}", "-p", f"key:={key}",
                "-p", f"recorder:={recorder}"]
    if args.station:
        ros_args += ["-r", f"__ns:=/{args.station.strip('/')}"]
    return xr_node.main(ros_args)
