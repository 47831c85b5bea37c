"""robot_capture.bag: rosbag2-compatible MCAP bag directories, without ROS.

``BagWriter``/``WriterOptions`` (writer.py), ``BagReader`` (reader.py), ``recover``
(recover.py), metadata.yaml (metadata.py), message definitions and type hashes
(msgdefs.py), QoS profiles (qos.py), errors (errors.py).
"""
from robot_capture.bag.errors import (BagClosedError, BagDiskFullError, BagError,  # noqa: F401
                                      BagWriteError, IncompleteBagFileError, NotABagError)
from robot_capture.bag.metadata import BagMetadata, read_metadata  # noqa: F401
from robot_capture.bag.writer import BagWriter, TopicStats, WriterOptions  # noqa: F401
from robot_capture.bag.reader import BagMessage, BagReader, TopicInfo  # noqa: F401
from robot_capture.bag.recover import RecoveryReport, recover  # noqa: F401
