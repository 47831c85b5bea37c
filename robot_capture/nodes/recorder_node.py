"""recorder_node: record ROS 2 topics into one rosbag2 (MCAP) bag per episode.

A thin rclpy shell over :class:`robot_capture.record.recorder.Recorder`.

Subscriptions are ``raw=True`` (CDR bytes, never deserialized); the MessageInfo
gives ``log_time`` = ``received_timestamp`` and ``publish_time`` =
``source_timestamp`` (ns), plus the publication sequence number and publisher
GID used to count drops. Topics are (re)discovered every
``discovery_interval_s``; the subscription QoS adapts to the publishers' offers
like rosbag2 (``robot_capture.bag.qos.adapt_request_to_offers``: best effort if
any publisher is, transient local only if all are) with a history depth of at
least ``qos_depth``; the offers go into the bag's ``offered_qos_profiles``.
Executor: rclpy's SingleThreadedExecutor. The experimental EventsExecutor was
tried (rclpy 9.1.2 wheels): ``spin_once`` raised SystemError and services went
unanswered, so it is not used.

Services (std_srvs/Trigger, node-private; ``message`` is the reply: the bag path, or the error).
Each is one command of the episode manager (``robot_capture.console``; table in
``robot_capture/console/commands.py``):
    ~/start_episode          start; refused while a required stream is not fresh (the reply names it)
    ~/start_episode_forced   start anyway; the episode is flagged ``forced``
    ~/toggle_episode         start when not recording, else stop unlabelled
    ~/stop_episode           stop with the label in parameter ``episode_success``
                             (true/false; anything else = unlabelled ``unknown``),
                             which is reset to ``unknown`` after every stop
    ~/stop_episode_success   stop, labelled success (with no episode open: relabel the last one)
    ~/stop_episode_failure   stop, labelled failure (idem)
    ~/discard_episode        stop and move the bag to ``<output_dir>/discarded/``
    ~/discard_last           move the last stopped episode to ``discarded/`` (until the next start)
    ~/relabel_last           relabel the last episode from ``relabel_success``, ``relabel_task``,
                             ``relabel_operator``, ``relabel_scene``, ``relabel_notes`` ("" = unchanged;
                             reset after the call); ``~/relabel_last_success``, ``~/relabel_last_failure``
    ~/next_task              set ``task`` to the next entry of ``tasks``
    ~/status                 JSON: state, ready, reasons, streams, session counters, last episode
    ~/split                  continue the episode in the next ``<name>_<n>.mcap``
The same JSON is published on ``~/console_state`` (std_msgs/String, transient local) at
``console_rate_hz``.

The verdict at stop: every closed episode (stop, auto-stop, disk, write error, shutdown) is
judged by the full QA, the code ``robot-capture qa`` runs, on the closed bag, in a worker
process (:mod:`robot_capture.qa.recorder`), so the next episode can start meanwhile. A stop
reply says ``QA running``; the console state's ``last`` gets ``qa: done`` and the verdict
(``<bag>/qa.json`` has it) a few seconds later, and the log a line ``QA PASS|WARN|FAIL <episode>``.

One owner: the node holds ``<output_dir>/.recorder.lock`` (a second recorder on the same
folder exits with an error); every recorder announces (start time, host, pid) on
``~/owner`` (latched), and of two nodes with the same fully qualified name the one that
started later exits (code 3); every start is refused while a duplicate is in the graph.

Parameters (``--ros-args -p name:=value``):
    output_dir: "recordings"       topics: []  all: false  regex: ""  exclude: ""
    task, operator, scene, notes: ""  (read at each start)   episode_success: "unknown"
    compression: none|lz4|zstd ("none", as rosbag2)  compression_level: -100 (= library default)
    chunk_size: 4194304   max_bag_size: 0 (bytes, 0 = no split)   max_bag_duration_s: 0.0
    flush_interval_s: 1.0 (bounds what a SIGKILL loses)   fsync: true
    disk_min_free_mb: 1024.0 (disk guard; 0 = off)
    robot: "" (attach its URDF and config/robots/<robot>.yaml)  urdf: ""  attach_configs: []
    auto_start: false (start an episode at launch)   discovery_interval_s: 1.0
    diagnostics_rate_hz: 1.0   status_log_s: 0.0 (log a one-line progress summary this often; 0 = off)
    qos_depth: 1000 (subscription history depth; the DDS reader buffers this many messages
        while the Python thread is not scheduled: 1 s at 1 kHz)
    qos_depth_large: 100 (the same for large-message types: Image, CompressedImage,
        PointCloud2, ...; bounds memory to ~100 frames per topic)
    take_period_s: 0.05 (small messages, every type but the large ones below, are polled:
        their subscriptions belong to the hidden companion node ``_<name>_input``, which no
        executor spins, and a timer takes what waits this often, so 1 kHz joint states cost
        20 wake-ups a second, not 1000 (an idle recorder: 20, ~1 % of a core); large messages keep a callback each, taken while the
        middleware's copy is in cache. 0 = a callback for every message. Polled topics report
        drops from sequence gaps only: no message_lost / incompatible_qos events)
    drain_batch: 64 (after a callback, take up to this many more queued messages of the same
        subscription directly, skipping the executor's per-message overhead; 0 = off)
    expected_streams: [] (the station contract, one JSON stream per entry, floor.graph sets them
        (robot_capture.floor.contract); or "topic=rate_hz", rate 0 or none = presence only)
    optional_streams: [] (shown, never block)
    stream_lost_s: 2.0 (auto-stop)  silent_after_s: 1.0  min_rate_fraction: 0.5 (robot_capture.console.streams)
    tasks: [] (for ~/next_task)   console_rate_hz: 4.0 (stream sampling and ~/console_state)
    joy_map: "" (the shipped config/console_joy.yaml: sensor_msgs/Joy on /vr/buttons; "none" = off)

Publishes ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): one ``recorder`` status
(state, episode, disk free, last error) and one ``recorder: <topic>`` status per topic
(rate_hz, messages, bytes, drops, gaps, max_gap_s, expected_period_s, problems).
SIGINT/SIGTERM (handled in Python, the ROS context stays up until the episode is closed): the
open episode is stopped at once, with reason ``shutdown``, with what waits in the readers and
the ``episode_success`` label as a stop would (metadata.yaml written); then the output folder lock is released (``robot-capture up`` and the
launch files stop the data sources only after that, so the episode never ends in their
silence); then the QA of the closed episodes is finished, for at most ``QA_SHUTDOWN_WAIT_S``
(a SIGTERM after the first signal skips it: the bag is left without a verdict, never a wrong one).
"""
from __future__ import annotations

import sys
from pathlib import Path

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rcl_interfaces.msg import ParameterDescriptor
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from robot_capture.bag import WriterOptions
from robot_capture.bag.qos import adapt_request_to_offers
from robot_capture.nodes._polled import input_node, take
from robot_capture.nodes._recorder_console import ConsoleShell, _label
from robot_capture.nodes._qos import import_message, offered_qos, qos_from_dict, run_node
from robot_capture.qa.recorder import StopVerdicts
from robot_capture.record.episode import EpisodeInfo
from robot_capture.record.recorder import Recorder
from robot_capture.record.selection import TopicSelection

_OK, _WARN, _ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
#: at shutdown, how long the recorder waits for the QA of its closed episodes (s); below the 15 s
#: the floor gives the recorder before SIGTERM (robot_capture.floor.graph)
QA_SHUTDOWN_WAIT_S = 10.0

PARAMS = {
    "output_dir": "recordings", "topics": Parameter.Type.STRING_ARRAY, "all": False, "regex": "", "exclude": "",
    "task": "", "operator": "", "scene": "", "notes": "",
    "compression": "none", "compression_level": -100, "chunk_size": 4 * 1024 * 1024, "max_bag_size": 0,
    "max_bag_duration_s": 0.0, "flush_interval_s": 1.0, "fsync": True, "disk_min_free_mb": 1024.0,
    "robot": "", "urdf": "", "attach_configs": Parameter.Type.STRING_ARRAY, "auto_start": False,
    "discovery_interval_s": 1.0, "diagnostics_rate_hz": 1.0, "status_log_s": 0.0, "qos_depth": 1000, "qos_depth_large": 100,
    "take_period_s": 0.05, "drain_batch": 64,
    "expected_streams": Parameter.Type.STRING_ARRAY, "optional_streams": Parameter.Type.STRING_ARRAY,
    "stream_lost_s": 2.0, "silent_after_s": 1.0, "min_rate_fraction": 0.5, "tasks": Parameter.Type.STRING_ARRAY,
    "console_rate_hz": 4.0, "joy_map": "",
    "relabel_success": "", "relabel_task": "", "relabel_operator": "", "relabel_scene": "", "relabel_notes": "",
}

# one line per parameter: the README's recorder table is generated from PARAMS and this
# (python -m robot_capture.nodes.declared --write README.md; test/test_readme_params.py)
PARAM_HELP = {
    "output_dir": "where episode bags go",
    "topics": "topics to record (explicit list)",
    "all": "record every (non-hidden) topic",
    "regex": "also record topics matching this regex",
    "exclude": "never record topics matching this regex",
    "task": "episode label, read at each start",
    "operator": "episode label, read at each start",
    "scene": "episode label, read at each start",
    "notes": "episode label, read at each start",
    "episode_success": "success label read at stop (true/false; else unlabelled), reset after each stop",
    "compression": "MCAP chunk compression: none (as rosbag2), lz4, zstd",
    "compression_level": "lz4/zstd level; -100 = the library default",
    "chunk_size": "uncompressed bytes per MCAP chunk",
    "max_bag_size": "split to the next file at this many bytes (0 = never)",
    "max_bag_duration_s": "split to the next file every this many seconds (0 = never)",
    "flush_interval_s": "a chunk is written at least this often: bounds what a SIGKILL can lose",
    "fsync": "fdatasync after writes (power-cut safety)",
    "disk_min_free_mb": "disk guard: below it the episode is stopped cleanly (0 = off)",
    "robot": "robot whose URDF and mapping YAML are attached to every episode",
    "urdf": "URDF to attach (overrides robot's)",
    "attach_configs": "more config files attached to every episode",
    "auto_start": "start an episode at launch",
    "discovery_interval_s": "topic discovery period",
    "diagnostics_rate_hz": "/diagnostics rate",
    "status_log_s": "log a one-line progress summary this often (0 = off)",
    "qos_depth": "subscription history depth (the DDS reader buffers this many while Python waits)",
    "qos_depth_large": "the same for large types (Image, CompressedImage, PointCloud2, ...)",
    "take_period_s": "small messages are polled this often by a timer, no wake-up per message (0 = callbacks)",
    "drain_batch": "after a callback, take up to this many more queued messages directly (0 = off)",
    "expected_streams": "the station contract's streams (one JSON object each, or \"topic=rate_hz\"; the floor sets them)",
    "optional_streams": "streams shown, never required",
    "stream_lost_s": "a required stream silent this long stops the episode",
    "silent_after_s": "a stream is reported silent after this long",
    "min_rate_fraction": "a stream below this fraction of its rate is reported slow",
    "tasks": "task list cycled by ~/next_task",
    "console_rate_hz": "stream sampling and ~/console_state rate",
    "joy_map": "sensor_msgs/Joy button map ('' = config/console_joy.yaml, none = off)",
    "relabel_success": "~/relabel_last: new success label ('' = unchanged)",
    "relabel_task": "~/relabel_last: new task ('' = unchanged)",
    "relabel_operator": "~/relabel_last: new operator ('' = unchanged)",
    "relabel_scene": "~/relabel_last: new scene ('' = unchanged)",
    "relabel_notes": "~/relabel_last: new notes ('' = unchanged)",
}



_LARGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/PointCloud2",
                "sensor_msgs/msg/PointCloud", "sensor_msgs/msg/LaserScan", "nav_msgs/msg/OccupancyGrid",
                "theora_image_transport/msg/Packet", "ffmpeg_image_transport_msgs/msg/FFMPEGPacket")


def _is_large(type_name: str) -> bool:
    return type_name in _LARGE_TYPES


def _bool(value) -> bool:
    return _label(value) is True


def _regex(value) -> str | None:
    """A regex parameter; a list (from a YAML config) is OR-ed."""
    if isinstance(value, (list, tuple)):
        value = "|".join(f"(?:{v})" for v in value if v)
    return str(value) if value else None


def _attachments(robot: str, urdf: str, configs) -> list[Path]:
    out = [Path(p) for p in configs or [] if p]
    if urdf:
        out.insert(0, Path(urdf))
    elif robot:
        try:
            from robot_capture.retarget.mapping import RobotMapping

            m = RobotMapping.load(robot)
            out.insert(0, Path(m.urdf))
            yaml_path = getattr(m, "path", None)
            if yaml_path is None:
                from robot_capture.paths import config_dir

                cand = config_dir() / "robots" / f"{robot}.yaml"
                yaml_path = cand if cand.is_file() else None
            if yaml_path:
                out.append(Path(yaml_path))
        except Exception as exc:  # noqa: BLE001 - a wrong robot name must not stop recording
            print(f"recorder: cannot resolve robot {robot!r} for attachments: {exc}", file=sys.stderr)
    return out


class _StderrLog:
    """Logger used after rclpy shut down (rosout is gone by then)."""

    def _say(self, level, msg):
        print(f"[{level}] [recorder]: {msg}", file=sys.stderr)

    def info(self, msg):
        self._say("INFO", msg)

    def warning(self, msg):
        self._say("WARN", msg)

    def error(self, msg):
        self._say("ERROR", msg)


class RecorderNode(ConsoleShell, Node):
    """The recorder node (see the module docstring for services and parameters)."""

    def __init__(self, parameter_overrides=None, name: str = "recorder"):
        super().__init__(name, parameter_overrides=parameter_overrides or [])
        dyn = ParameterDescriptor(dynamic_typing=True)  # `-p disk_min_free_mb:=0` (an int) must not crash
        for key, default in PARAMS.items():
            if isinstance(default, Parameter.Type):
                self.declare_parameter(key, default)
            else:
                self.declare_parameter(key, default, dyn)
        self.declare_parameter("episode_success", "unknown", dyn)
        p = self._p
        level = int(p("compression_level"))
        opts = WriterOptions(compression=str(p("compression")), compression_level=None if level == -100 else level,
                             chunk_size=int(p("chunk_size")), max_bag_size=int(p("max_bag_size")),
                             max_bag_duration_s=float(p("max_bag_duration_s")),
                             flush_interval_s=float(p("flush_interval_s")), fsync=_bool(p("fsync")))
        self.selection = TopicSelection(topics=p("topics") or [], all=_bool(p("all")), regex=_regex(p("regex")),
                                        exclude=_regex(p("exclude")))
        self.rec = Recorder(p("output_dir"), opts,
                            attachments=_attachments(p("robot"), p("urdf"), p("attach_configs")),
                            disk_min_free_bytes=int(float(p("disk_min_free_mb")) * 1e6), logger=self.get_logger())
        self.create_manager()
        self.video = self._video_stage()
        # the verdict at stop: the full QA of each closed bag, in a worker process
        self._verdicts = StopVerdicts(logger=self.get_logger())
        self.rec.on_closed = self._verdicts.submit
        self.manager.qa_at_stop = True
        # the worker starts at the first stop, not here: its start-up (a Python process importing the
        # QA at the recorder's priority) fell inside the first episode of a floor recorded right after
        # start and starved the 500 Hz streams on a loaded 2-core PC (2 of 2,000 joint states missing)
        self._subs: dict[str, object] = {}
        self._seen_types: set[tuple[str, str]] = set()
        self._refused: dict[str, tuple] = {}   # topic -> types tuple that could not be subscribed
        self._depth = int(p("qos_depth"))
        self._depth_large = int(p("qos_depth_large"))
        self._drain = int(p("drain_batch"))
        self._take_period = float(p("take_period_s"))
        if not self._take_period >= 0:
            raise ValueError(f"take_period_s must be >= 0, got {self._take_period}")
        self._polled: dict[str, tuple] = {}  # topic -> (subscription, message class, handle(data, info))
        self._input_node = input_node(self) if self._take_period > 0 else None
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.setup_console()
        self.create_timer(max(0.05, float(p("discovery_interval_s"))), self.discover)
        if self._input_node is not None:
            self.create_timer(self._take_period, self.take_all)
        rate = float(p("diagnostics_rate_hz"))
        if rate > 0:
            self.create_timer(1.0 / rate, self.publish_diagnostics)
        else:  # no diagnostics: the disk guard and rate windows still tick at 1 Hz
            self.create_timer(1.0, self.rec.tick)
        if float(p("status_log_s")) > 0:
            self.create_timer(float(p("status_log_s")), self.log_status)
        self.create_timer(0.25, self.poll_verdicts)
        self.discover()
        if _bool(p("auto_start")):
            try:
                path = self.manager.start(self._episode_info(), force=True)
                self.get_logger().info(f"auto_start: recording {path}")
            except Exception as exc:  # noqa: BLE001 - e.g. disk low: keep serving, report on /diagnostics
                self.rec.last_error = f"auto_start failed: {exc}"
                self.get_logger().error(self.rec.last_error)

    def _p(self, name):
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException:  # string arrays declared without a default
            return None

    def _episode_info(self) -> EpisodeInfo:
        return EpisodeInfo(task=str(self._p("task")), operator=str(self._p("operator")),
                           scene=str(self._p("scene")), notes=str(self._p("notes")))

    # ---------------------------------------------------------------- discovery
    def discover(self) -> None:
        """Subscribe to every selected topic not yet subscribed; flag type changes."""
        try:
            names = self.get_topic_names_and_types()
        except Exception:  # noqa: BLE001 - a timer that fires while the context shuts down (SIGINT)
            if self.context.ok():
                raise
            return
        for topic, types in self.selection.select(names):
            if topic in self._subs:
                if self.rec.episode is None:  # between episodes: the next bag gets the current offers
                    self.rec.set_offered_qos(topic, offered_qos(self, topic, self.rec.topics.get(topic)))
                for t in types:
                    if (topic, t) not in self._seen_types:  # a new type on a recorded topic
                        self._seen_types.add((topic, t))
                        self.rec.add_topic(topic, t)  # counts (once per new type) and warns (once)
                continue
            if self._refused.get(topic) == tuple(types):
                continue
            self._subscribe(topic, types)

    def _subscribe(self, topic: str, types: list[str]) -> None:
        chosen, cls = None, None
        for t in types:
            cls = import_message(t)
            if cls is not None:
                chosen = t
                break
        if chosen is None:
            self._refused[topic] = tuple(types)
            self.rec.problem(topic, "unknown_type", f"topic {topic}: no installed message type among {types}; "
                             "not recorded (install the interface package)")
            return
        if len(types) > 1:
            self.rec.problem(topic, "type_change", f"topic {topic} has several types {types}; recording {chosen}")
        offers = offered_qos(self, topic, chosen)
        req = adapt_request_to_offers(offers)
        base = self._depth_large if _is_large(chosen) else self._depth
        depth = max([base] + [int(o.get("depth", 0)) for o in offers])
        video = self.video is not None and self.video.handles(topic) and chosen == "sensor_msgs/msg/Image"
        if not (self.video.add_topic(topic, offers) if video else self.rec.add_topic(topic, chosen, offers)):
            self._refused[topic] = tuple(types)
            return
        rec_on_message, rec_on_lost = self.rec.on_message, self.rec.on_lost
        if video:  # encoded on the camera's own thread (robot_capture.video.stage); the callback only queues
            submit = self.video.submit
            rec_on_message = lambda t, _ty, *a: submit(t, *a)  # noqa: E731

        def handle(data, info, _topic=topic, _type=chosen):
            gid = info.get("publisher_gid")
            rec_on_message(_topic, _type, data, info["received_timestamp"], info["source_timestamp"],
                           info.get("publication_sequence_number"), gid["data"] if gid else None)

        def callback(data, info, _topic=topic, _cls=cls):
            handle(data, info)
            drain = self._drain
            if drain:  # take what else is queued now, without a trip through the executor per message
                sub = self._subs.get(_topic)
                try:
                    h = sub.handle
                    for _ in range(drain):
                        with h:
                            taken = h.take_message(_cls, True)
                        if taken is None:
                            break
                        handle(*taken)
                except Exception as exc:  # noqa: BLE001 - rclpy API drift: fall back to one per callback
                    self._drain = 0
                    self.get_logger().warning(f"batch take unavailable ({exc!r}); one message per callback")

        events = SubscriptionEventCallbacks(
            message_lost=lambda ev, _topic=topic: rec_on_lost(_topic, ev.total_count_change),
            incompatible_qos=lambda ev, _topic=topic: self.rec.problem(
                _topic, "incompatible_qos", f"topic {_topic}: a publisher's QoS is incompatible with the "
                f"recorder's request ({req['reliability']}, {req['durability']})"),
            use_default_callbacks=False)
        self._seen_types.update((topic, t) for t in types)
        if self._input_node is not None and not _is_large(chosen):
            sub = self._input_node.create_subscription(cls, topic, lambda *_: None, qos_from_dict(req, depth),
                                                       raw=True)
            self._subs[topic] = sub
            self._polled[topic] = (sub, cls, handle)
            verb = "recording" if self.rec.episode is not None else "subscribed to"
            self.get_logger().info(f"{verb} {topic} [{chosen}] {req['reliability']}/{req['durability']} (polled)")
            return
        try:
            self._subs[topic] = self.create_subscription(cls, topic, callback, qos_from_dict(req, depth), raw=True,
                                                         event_callbacks=events)
        except Exception as exc:  # noqa: BLE001 - e.g. message_lost unsupported by an rmw
            self.get_logger().warning(f"{topic}: subscribing with event callbacks failed ({exc}); retrying without")
            self._subs[topic] = self.create_subscription(cls, topic, callback, qos_from_dict(req, depth), raw=True)
        verb = "recording" if self.rec.episode is not None else "subscribed to"
        self.get_logger().info(f"{verb} {topic} [{chosen}] {req['reliability']}/{req['durability']}")

    def take_all(self, limit: int = 5000) -> int:
        """Take every message waiting in the polled subscriptions (at most ``limit`` per topic
        per call, so services and timers keep their turn); returns how many were taken."""
        n = 0
        for topic, (sub, cls, handle) in list(self._polled.items()):
            try:
                for _ in range(limit):
                    taken = take(sub, cls)
                    if taken is None:
                        break
                    handle(*taken)
                    n += 1
            except Exception as exc:  # noqa: BLE001 - never crash the recorder on one topic
                self.get_logger().warning(f"{topic}: take failed ({exc!r})", throttle_duration_sec=5.0)
        return n

    def _video_stage(self):
        """The per-camera encoders of the contract's ``h264``/``lossless`` cameras (None: none)."""
        from robot_capture.floor.contract import streams_from_params
        from robot_capture.video.stage import VideoStage, settings_from_streams

        cams = settings_from_streams(streams_from_params(self._p("expected_streams"),
                                                         self._p("optional_streams") or ()))
        if not cams:
            return None
        stage = VideoStage(self.rec, cams, logger=self.get_logger())
        self.get_logger().info("video: recording " + ", ".join(
            f"{t} as {s.codec} ({stage.cameras[t].encoder.encoder if stage.cameras[t].encoder else 'NOT recorded'})"
            for t, s in cams.items()))
        return stage

    def destroy_node(self) -> None:
        if getattr(self, "video", None) is not None:
            self.video.close()
        helper, self._input_node = getattr(self, "_input_node", None), None
        if helper is not None:
            helper.destroy_node()
        super().destroy_node()

    # ---------------------------------------------------------------- services
    def _reply(self, response, fn):
        try:
            response.message = str(fn())
            response.success = True
        except Exception as exc:  # noqa: BLE001 - services report errors, never raise
            response.success = False
            response.message = str(exc)
        return response

    def _srv_split(self, _req, response):
        return self._reply(response, self.rec.split)

    # ---------------------------------------------------------------- diagnostics
    def publish_diagnostics(self) -> None:
        """Tick the recorder (rates, disk guard) and publish one DiagnosticArray."""
        self.rec.tick()
        s = self.rec.status()
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        top = DiagnosticStatus(name="recorder", hardware_id=self.get_fully_qualified_name())
        top.level = _ERROR if s["last_error"] else _OK
        top.message = s["last_error"] or (f"recording {s['episode']}" if s["episode"] else "idle")
        top.values = [KeyValue(key=k, value=str(v)) for k, v in (
            ("state", s["state"]), ("episode", s["episode"]), ("episode_path", s["episode_path"]),
            ("episode_elapsed_s", f"{s['episode_elapsed_s']:.1f}"),
            ("disk_free_mb", f"{s['disk_free_bytes'] / 1e6:.0f}"), ("episodes_recorded", s["episodes_recorded"]),
            ("topics", len(self._subs)))]
        arr.status.append(top)
        for topic, t in sorted(s["topics"].items()):
            st = DiagnosticStatus(name=f"recorder: {topic}", hardware_id=t["type"])
            bad = t["drops"] or t["problems"]
            st.level = _WARN if bad else _OK
            st.message = ", ".join(f"{k} x{n}" for k, n in t["problems"].items()) or (
                f"{t['drops']} dropped" if t["drops"] else "ok")
            st.values = [KeyValue(key=k, value=str(v)) for k, v in (
                ("rate_hz", f"{t['rate_hz']:.2f}"), ("messages", t["messages"]), ("bytes", t["bytes"]),
                ("drops", t["drops"]), ("gaps", t["gaps"]), ("max_gap_s", f"{t['max_gap_s']:.4f}"),
                ("expected_period_s", f"{t['expected_period_s']:.4f}"), ("received", t["received"]),
                ("problems", sum(t["problems"].values())))]
            arr.status.append(st)
        self._diag_pub.publish(arr)

    def log_status(self) -> None:
        """One progress line: episode, elapsed, messages, MB, drops, disk free."""
        s = self.rec.status()
        t = s["topics"].values()
        if s["episode"]:
            msg = (f"recording {s['episode']}: {s['episode_elapsed_s']:.0f} s, {sum(x['messages'] for x in t)} msgs, "
                   f"{sum(x['bytes'] for x in t) / 1e6:.1f} MB, {sum(x['drops'] for x in t)} dropped, "
                   f"{len(self._subs)} topics, {s['disk_free_bytes'] / 1e9:.1f} GB free")
        else:
            msg = f"idle ({len(self._subs)} topics){': ' + s['last_error'] if s['last_error'] else ''}"
        self.get_logger().info(msg)

    # ---------------------------------------------------------------- verdict at stop
    def poll_verdicts(self) -> int:
        """Put finished QA verdicts into the console state and the log; returns how many."""
        results = self._verdicts.poll()
        for r in results:
            self._verdict_done(r)
        if results:
            try:
                self.publish_state()
            except Exception:  # noqa: BLE001 - at shutdown the context may be gone
                pass
        return len(results)

    def _verdict_done(self, r) -> None:
        from robot_capture.episodes import load_episode

        v = r.verdict
        if v is not None:
            try:  # the labels check judged from the labels as they are now (a relabel while QA ran)
                v = load_episode(r.bag).verdict or v
            except Exception:  # noqa: BLE001 - e.g. discarded (moved) since: the worker's verdict
                pass
        self.manager.verdict_ready(r.bag.name, v, r.error)
        if v is not None:
            self.rec.log.info(f"QA {v.verdict.upper()} {r.bag.name} ({r.elapsed_s:.1f} s after the stop)"
                              + "".join(f"\n    - {x}" for x in v.reasons))
        else:
            self.rec.log.warning(f"QA of {r.bag.name}: no verdict ({r.error})")

    def shutdown(self, abort=None) -> None:
        """At SIGINT/SIGTERM: stop the open episode first (reason ``shutdown``, what waits in the readers
        included, metadata.yaml written), release the output folder lock (the supervisor's cue to stop the
        sources), then finish the QA of closed episodes for at most ``QA_SHUTDOWN_WAIT_S`` or until
        ``abort`` (threading.Event) is set. Safe to call twice."""
        if self.rec.episode is not None and self._polled:
            try:  # what still waits in the polled readers belongs to the closing episode
                self.take_all()
            except Exception:  # noqa: BLE001 - the context may already be shut down
                pass
        self.rec.log = _StderrLog()  # rosout may be gone by the time this runs
        path = None
        if self.manager.recording:
            try:
                # labelled as a stop would be: the `episode_success` parameter (unlabelled unless set)
                path = self.manager.stop(_label(self._p("episode_success")), reason="shutdown").splitlines()[0]
            except Exception as exc:  # noqa: BLE001 - e.g. the recorder stopped it meanwhile
                self.rec.log.warning(f"stopping the episode at shutdown: {exc}")
        path = self.rec.close() or path  # anything the manager did not own
        self._output_lock.release()
        if path is not None:
            print(f"recorder: episode closed: {path}", file=sys.stderr)
        if self._verdicts.pending:
            print(f"recorder: finishing the QA of {', '.join(b.name for b in self._verdicts.pending)} "
                  f"(at most {QA_SHUTDOWN_WAIT_S:g} s; SIGTERM skips it)", file=sys.stderr)
            for r in self._verdicts.wait(QA_SHUTDOWN_WAIT_S, stop=abort):
                self._verdict_done(r)
            for b in self._verdicts.pending:
                print(f"recorder: QA of {b.name} not finished: run `robot-capture qa {b}`", file=sys.stderr)
        self._verdicts.close(wait=False)


def run(parameter_overrides=None, args=None) -> int:
    """Run the node until SIGINT/SIGTERM (``parameter_overrides``: list of rclpy Parameters).

    First removes the Fast DDS shared-memory files of dead processes (a SIGKILLed recorder's
    ports; ``robot_capture.dds_shm``), saying so in one line, so a fresh recorder starts cleanly."""
    from robot_capture.dds_shm import startup_clean

    startup_clean(lambda line: print(f"recorder: {line}", file=sys.stderr, flush=True))
    return run_node(lambda overrides: RecorderNode(overrides), "shutdown", args=args,
                    parameter_overrides=parameter_overrides)


def main(args=None) -> int:
    """Entry point of ``ros2 run robot_capture recorder_node [--ros-args ...]``."""
    return run(args=sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())
