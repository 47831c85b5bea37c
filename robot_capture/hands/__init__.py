"""robot_capture.hands: dexterous hand retargeting (issue 20), ROS-free.

A hand is one YAML file (``config/hands/<hand>.yaml``, schema :mod:`.schema`); :func:`load_hand`
turns it into a kinematic hand (:mod:`.model`) and :class:`HandRetargeter` (:mod:`.solver`) maps
the 26 OpenXR hand joints onto its joints with the C IK solver's vector tasks (vector,
DexPilot-style with pinch weighting :mod:`.pinch`, position modes). Contract: DESIGN.md "hands".
"""
from .model import Hand, HandConfigError, load_hand, palm_frame, resolve_hand, shipped_hands
from .solver import HandInputError, HandResult, HandRetargeter, as_positions, handedness

__all__ = ["Hand", "HandConfigError", "load_hand", "palm_frame", "resolve_hand", "shipped_hands",
           "HandInputError", "HandResult", "HandRetargeter", "as_positions", "handedness"]
