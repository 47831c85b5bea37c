"""The headset pose path, ROS-free: protocol checks, WebXR -> REP-103, clock offset, one driver, drops."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from _xr_frames import frame, hand_joints, quat_about, text
from robot_capture.retarget.hand_tracking import webxr_to_openxr
from robot_capture.xr.clock import ClockSync
from robot_capture.xr.convert import head_to_vr_world, wrist_to_vr_world
from robot_capture.xr.protocol import MAX_MESSAGE_BYTES, Frame, ProtocolError, parse_message
from robot_capture.xr.session import Refused, XrHub


# -- protocol -----------------------------------------------------------------------------------

def test_a_frame_with_two_hands_parses():
    f = parse_message(text(frame()))
    assert isinstance(f, Frame) and set(f.hands) == {"left", "right"} and f.hands["left"].shape == (25, 7)


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d["head"].__setitem__(3, float("nan")), "head: NaN"),
    (lambda d: d.__setitem__("head", [0, 1.6, 0, 0, 0, 0, 2.0]), "head: quaternion norm 2"),
    (lambda d: d.__setitem__("head", [0, 1.6, 0, 0, 0, 0, 0]), "head: quaternion norm 0"),
    (lambda d: d["hands"].__setitem__("left", d["hands"]["left"][:24]), "hands.left: 24 joints, expected 25"),
    (lambda d: d["hands"]["right"][7].__setitem__(6, 0.2), "hands.right joint 7: quaternion norm"),
    (lambda d: d.pop("seq"), "missing 'seq'"),
    (lambda d: d.__setitem__("seq", -1), "seq: expected an integer"),
    (lambda d: d.__setitem__("extra", 1), "unknown key(s) extra"),
    (lambda d: d.__setitem__("controllers", {"left": {"pose": [0, 1, 0, 0, 0, 0, 1], "axes": [3.0]}}), "axes"),
    (lambda d: d.__setitem__("controllers", {"middle": None}), "unknown key(s) middle"),
])
def test_bad_frames_are_refused_with_the_element_named(mutate, words):
    d = frame()
    mutate(d)
    with pytest.raises(ProtocolError, match=None) as err:
        parse_message(json.dumps(d))
    assert words in str(err.value)


def test_malformed_and_oversized_messages_are_refused():
    for msg, words in (("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object"),
                       (b"\x00", "binary message"), ('{"type": "hello"}', "unknown message type"),
                       (" " * (MAX_MESSAGE_BYTES + 1), "at most")):
        with pytest.raises(ProtocolError) as err:
            parse_message(msg)
        assert words in str(err.value)


# -- conversion ---------------------------------------------------------------------------------

def test_head_one_metre_ahead_looking_left_is_rep103():
    # WebXR: y up, -z forward. 1 m ahead, 1.6 m up, turned 90 deg to the left (about +y)
    T = head_to_vr_world([0.0, 1.6, -1.0] + quat_about([0, 1, 0], math.pi / 2))
    np.testing.assert_allclose(T[:3, 3], [1.0, 0.0, 1.6], atol=1e-12)
    np.testing.assert_allclose(T[:3, 0], [0.0, 1.0, 0.0], atol=1e-12)  # looks along +y (left)
    np.testing.assert_allclose(T[:3, 2], [0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(head_to_vr_world([0, 1.6, 0, 0, 0, 0, 1])[:3, :3], np.eye(3), atol=1e-12)


def test_hands_go_through_hand_tracking_to_26_openxr_joints():
    q = quat_about([0, 1, 0], 0.7)
    for side in ("left", "right"):
        joints, positions = hand_joints(side, [0.1, 1.1, -0.4], q, index=3)
        hub_samples = []
        hub = XrHub(hub_samples.append, now_ns=lambda: 10**12)
        conn = hub.connect("test")
        _sync(conn)
        d = frame(seq=1, t=1000.0, hands=False)
        d["hands"] = {side: joints}
        assert conn.handle(text(d)) == []
        s = hub_samples[-1]
        wrist = wrist_to_vr_world([0.1, 1.1, -0.4] + q, side)
        np.testing.assert_allclose(s.wrists[side], wrist, atol=1e-9)
        np.testing.assert_allclose(s.hands[side], webxr_to_openxr(positions, wrist, side), atol=1e-9)
        assert s.hands[side].shape == (26, 4, 4)


def test_right_wrist_joint_frame_turns_half_about_z():
    # the same WebXR joint rotation gives x toward the thumb on both hands: opposite x for right
    L = wrist_to_vr_world([0, 1, 0, 0, 0, 0, 1], "left")
    R = wrist_to_vr_world([0, 1, 0, 0, 0, 0, 1], "right")
    np.testing.assert_allclose(R[:3, 0], -L[:3, 0], atol=1e-12)
    np.testing.assert_allclose(R[:3, 2], L[:3, 2], atol=1e-12)


# -- clock --------------------------------------------------------------------------------------

def test_clock_offset_takes_the_least_delay_round_trip():
    c = ClockSync()
    true = 3.25  # headset - station, s
    # symmetric 10 ms round trip, then a queued one (80 ms out, 2 ms back) that would skew the offset
    c.add(100.000, 100.005 + true, 100.005 + true, 100.010)
    c.add(101.000, 101.080 + true, 101.080 + true, 101.082)
    assert c.offset_s == pytest.approx(true, abs=1e-9) and c.delay_s == pytest.approx(0.010)
    assert c.to_station(200.0 + true) == pytest.approx(200.0)
    assert not c.add(5.0, 1.0, 0.5, 6.0) and c.rejected == 1


def _sync(conn, headset_minus_station_s=0.0):
    ping = conn.ping()
    t = ping["t0"] + headset_minus_station_s * 1e3
    conn.handle(json.dumps({"type": "pong", "id": ping["id"], "t1": t, "t2": t}))


# -- session ------------------------------------------------------------------------------------

def test_frames_are_held_until_the_clock_is_synced_then_stamped_in_station_time():
    out = []
    now = [5_000_000_000_000]
    hub = XrHub(out.append, now_ns=lambda: now[0])
    conn = hub.connect("quest")
    replies = conn.handle(text(frame(seq=0, t=1.0)))
    assert out == [] and "clock sync pending" in replies[0]["reason"]
    _sync(conn, headset_minus_station_s=-4000.0)  # headset clock 4000 s behind
    assert hub.offset_s == pytest.approx(-4000.0)
    now[0] += 50_000_000
    sample_t_ms = (now[0] / 1e9 - 4000.0 - 0.020) * 1e3  # sampled 20 ms before it arrived
    assert conn.handle(text(frame(seq=1, t=sample_t_ms, hands=False))) == []
    assert out[-1].stamp_ns == pytest.approx(now[0] - 20_000_000, abs=2000)
    # an offset error never makes a stamp from the future
    conn.handle(text(frame(seq=2, t=sample_t_ms + 500.0, hands=False)))
    assert out[-1].stamp_ns == now[0]


def test_bad_input_replies_publishes_nothing_and_counts():
    out = []
    hub = XrHub(out.append)
    conn = hub.connect("quest")
    _sync(conn)
    d = frame(seq=1, t=1000.0)
    d["hands"]["left"] = d["hands"]["left"][:20]
    replies = conn.handle(json.dumps(d))
    assert out == [] and replies[0]["type"] == "error" and "20 joints" in replies[0]["reason"]
    assert "robot holds" in replies[0]["reason"]
    assert hub.latency.take()["refused_frames"] == 1


def test_second_headset_refused_unless_takeover():
    hub = XrHub(lambda s: None)
    first = hub.connect("10.0.0.5")
    with pytest.raises(Refused, match="--takeover"):
        hub.connect("10.0.0.6")
    assert hub.driver is first
    hub2 = XrHub(lambda s: None, takeover=True)
    a = hub2.connect("a")
    b = hub2.connect("b")
    assert hub2.driver is b and "taken over" in a.closed
    assert a.handle(text(frame()))[0]["type"] == "error"
    hub2.disconnect(a)
    assert hub2.driver is b  # the old socket closing does not end the new driver


def test_connection_lost_mid_episode_is_flagged():
    events = []
    state = {"state": "recording", "episode": "20261207-pick_0003"}
    hub = XrHub(lambda s: None, state=lambda: state, on_event=lambda lvl, t: events.append((lvl, t)))
    hub.disconnect(hub.connect("quest"), "socket closed (1006)")
    assert hub.drops and hub.drops[0]["episode"] == "20261207-pick_0003"
    assert events[-1][0] == "error" and "during episode 20261207-pick_0003" in events[-1][1]
    state["state"] = "ready"
    hub.disconnect(hub.connect("quest"))
    assert len(hub.drops) == 1 and events[-1][0] == "info"


def test_buttons_axes_joy_layout_and_dropped_frames():
    out = []
    hub = XrHub(out.append)
    conn = hub.connect("quest")
    _sync(conn)
    ctrl = {"right": {"pose": [0.2, 1, -0.3, 0, 0, 0, 1], "buttons": [1, 0, 0, 0, 1, 0, 0], "axes": [0, 0, 0.5, -1]},
            "left": {"pose": [-0.2, 1, -0.3, 0, 0, 0, 1], "buttons": [0, 1], "axes": []}}
    conn.handle(text(frame(seq=0, t=1000.0, hands=False, controllers=ctrl)))
    conn.handle(text(frame(seq=3, t=1011.0, hands=False, controllers=ctrl)))  # 1 and 2 never came
    conn.handle(text(frame(seq=2, t=1022.0, hands=False, controllers=ctrl)))  # late: not published
    s = out[-1]
    assert len(out) == 2 and s.buttons == (1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0)
    assert s.axes == (0.0, 0.0, 0.5, -1.0, 0.0, 0.0, 0.0, 0.0)
    assert set(s.wrists) == {"left", "right"} and s.hands == {}
    w = hub.latency.take()
    assert w["dropped_frames"] == 2 and w["frames"] == 2


def test_a_silent_driver_is_replaced_and_its_loss_flagged():
    now = [10**12]
    state = {"state": "recording", "episode": "ep_7"}
    hub = XrHub(lambda s: None, now_ns=lambda: now[0], state=lambda: state)
    first = hub.connect("10.0.0.5")
    now[0] += 1_000_000_000
    first.handle(text(frame(seq=0)))  # heard from 1 s in: still driving
    now[0] += 2_000_000_000
    with pytest.raises(Refused):
        hub.connect("10.0.0.6")
    now[0] += 2_000_000_000  # 4 s without a word: Wi-Fi gone, the socket not closed yet
    second = hub.connect("10.0.0.6")
    assert hub.driver is second and first.closed
    assert hub.drops and hub.drops[0]["episode"] == "ep_7" and "silent" in hub.drops[0]["why"]


def test_lost_hand_tracking_warns_once_and_recovers():
    events = []
    hub = XrHub(lambda s: None, on_event=lambda lvl, t: events.append((lvl, t)))
    conn = hub.connect("quest")
    _sync(conn)
    conn.handle(text(frame(seq=0)))
    d = frame(seq=1)
    del d["hands"]["left"]
    conn.handle(text(d))
    d["seq"] = 2
    conn.handle(text(d))
    warns = [t for lvl, t in events if lvl == "warn"]
    assert len(warns) == 1 and warns[0].startswith("left hand/controller tracking lost")
    conn.handle(text(frame(seq=3)))
    assert events[-1] == ("info", "left hand/controller tracked again")


def test_a_failing_event_handler_never_breaks_the_pose_path(capsys):
    def broken(level, text):
        raise ValueError("Logger severity cannot be changed between calls.")  # what rclpy raised in the node

    out = []
    hub = XrHub(out.append, state=lambda: {"state": "recording", "episode": "e"}, on_event=broken)
    conn = hub.connect("quest")
    _sync(conn)
    conn.handle(text(frame(seq=0)))
    hub.disconnect(conn)
    assert len(out) == 1 and hub.drops and "event not delivered" in capsys.readouterr().err


def test_a_message_flood_is_dropped_unread_and_answered_once_a_second():
    from robot_capture.xr.session import MAX_BURST

    out = []
    now = [10**12]
    hub = XrHub(out.append, now_ns=lambda: now[0])
    conn = hub.connect("quest")
    _sync(conn)
    msg = text(frame(seq=0, hands=False))
    replies = []
    for i in range(1000):  # 1000 messages within 1 ms
        now[0] += 1000
        d = json.loads(msg)
        d["seq"] = i
        replies += conn.handle(json.dumps(d))
    assert len(out) <= MAX_BURST and conn.flooded >= 1000 - MAX_BURST - 1
    assert len(replies) == 1 and "messages/s: dropped unread" in replies[0]["reason"]
    now[0] += 1_000_000_000  # a second later the bucket is full again: frames flow
    d["seq"] = 2000
    assert conn.handle(json.dumps(d)) == [] and out[-1].seq == 2000
