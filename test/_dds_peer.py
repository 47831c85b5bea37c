"""A DDS peer process for test_dds_profile.py: ``python _dds_peer.py pub|sub N``.

pub: waits for a subscriber, publishes N 640x480 rgb8 Images (reliable, KEEP_LAST N, so every
frame can be redelivered), waits until all are acknowledged, prints "PUB N". sub: receives until N
distinct frames arrived, prints "SUB N". Each gives up after 90 s (prints what it has).
"""
import sys
import time

import rclpy
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image

TOPIC, W, H = "/camera/interop/image_raw", 640, 480


def main() -> int:
    role, n = sys.argv[1], int(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node(f"dds_peer_{role}")
    qos = QoSProfile(depth=n)
    deadline = time.monotonic() + 90.0
    if role == "pub":
        pub = node.create_publisher(Image, TOPIC, qos)
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        msg = Image(height=H, width=W, encoding="rgb8", step=W * 3)
        for k in range(n):
            msg.header.frame_id = str(k)
            msg.data = bytes([k % 256]) * (W * H * 3)
            pub.publish(msg)
            time.sleep(1 / 30)
        acked = pub.wait_for_all_acked(rclpy.duration.Duration(seconds=max(1.0, deadline - time.monotonic())))
        print(f"PUB {n} acked={acked}", flush=True)
    else:
        seen = set()

        def cb(m):
            if len(m.data) == W * H * 3:
                seen.add(m.header.frame_id)

        node.create_subscription(Image, TOPIC, cb, qos)
        print("READY", flush=True)
        while len(seen) < n and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        print(f"SUB {len(seen)}", flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
