"""Record video, not raw pixels (issue 21): H.264 at record time, ``foxglove_msgs/msg/CompressedVideo``
in the bag, and decoding back to RGB for every reader. ROS-free.

* :mod:`robot_capture.video.msgdef` - the CompressedVideo definition text and CDR layout;
* :mod:`robot_capture.video.encode` - :class:`FrameEncoder` (libx264 / hardware / lossless);
* :mod:`robot_capture.video.decode` - :func:`decode_frames` (messages -> (stamp_ns, RGB));
* :mod:`robot_capture.video.stage` - per-camera encoder threads between the recorder node and the
  :class:`~robot_capture.record.recorder.Recorder`.
"""
