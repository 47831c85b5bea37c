"""Child process of :func:`robot_capture.floor.station_guard.probe_domain` (imports rclpy).

    python _station_probe.py NAMESPACE WAIT_S NAME[,NAME...]

Joins the ROS graph for WAIT_S seconds, collects nodes named NAME in NAMESPACE, asks each
for its parameter names (``<node>/list_parameters``, every rclpy and rclcpp node serves it)
and prints one line ``PROBE [{"node": "/recorder", "alive": true}, ...]``. A SIGKILLed
node's graph entry lingers until its DDS lease expires but never answers: ``alive`` false.
Run as a script path (like ``floor/_child.py``), never ``-m`` from a checkout.
"""
from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    namespace, wait_s, names = argv[0], float(argv[1]), set(argv[2].split(","))
    ns = "/" + namespace.strip("/") if namespace.strip("/") else "/"
    import rclpy
    from rcl_interfaces.srv import ListParameters
    from rclpy.executors import SingleThreadedExecutor

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node(f"_station_probe_{os.getpid()}", context=ctx, start_parameter_services=False,
                             enable_rosout=False)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    try:
        seen: set[tuple[str, str]] = set()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.05)
            seen |= {(n, s) for n, s in node.get_node_names_and_namespaces() if n in names and s == ns}
        out = []
        for n, s in sorted(seen):
            fqn = (s.rstrip("/") + "/" + n)
            cli = node.create_client(ListParameters, f"{fqn}/list_parameters")
            alive = False
            if cli.wait_for_service(timeout_sec=1.0):
                fut = cli.call_async(ListParameters.Request())
                end = time.monotonic() + 2.0
                while not fut.done() and time.monotonic() < end:
                    ex.spin_once(timeout_sec=0.05)
                alive = fut.done() and fut.result() is not None
            node.destroy_client(cli)
            out.append({"node": fqn, "alive": bool(alive)})
        print("PROBE " + json.dumps(out), flush=True)
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
