"""recover resyncs from the last record it could verify, not from where a bad length led it.

Found by the corrupted-bag suite in a loaded run (zstd#45 random_flips: 20 messages of an intact
chunk missed): a flipped length in a record nothing can check (a MessageIndex) sent the scan into
the middle of the next, intact, chunk; the scan then searched forward from *there* and skipped
that chunk. Records that carry no check must not be able to hide the good chunk after them."""
from __future__ import annotations

import shutil
import struct

from mcap.reader import make_reader

from robot_capture.bag import BagReader, BagWriter, WriterOptions, recover

JS = "sensor_msgs/msg/JointState"


def _bag(d, n=600):
    from bag_msgs import joint_state, ser

    names = [f"j{i}" for i in range(12)]
    w = BagWriter(d, WriterOptions(compression="none", chunk_size=8 * 1024, background_flush=False))
    w.add_topic("/joint_states", JS)
    sent = []
    for i in range(n):
        data = ser(joint_state(names, i, 1_000_000_000 + i))
        w.write("/joint_states", data, 1_000_000_000 + i * 1_000_000)
        sent.append(data)
    w.close()
    return sent


def test_a_flipped_message_index_length_never_hides_the_next_chunk(tmp_path):
    src = tmp_path / "orig"
    sent = _bag(src)
    d = tmp_path / "damaged"
    shutil.copytree(src, d)
    (f,) = sorted(d.glob("*.mcap"))
    with open(f, "rb") as fh:
        chunks = sorted((ci.chunk_start_offset, ci.chunk_length) for ci in make_reader(fh).get_summary().chunk_indexes)
    assert len(chunks) >= 4
    data = bytearray(f.read_bytes())
    (c1, l1), (c2, l2) = chunks[1], chunks[2]
    mi = c1 + l1  # the MessageIndex record right after chunk 1
    assert data[mi] == 0x07
    # a landing point inside chunk 2 whose byte is no MCAP opcode: the scan sees garbage there
    land = next(p for p in range(c2 + 40, c2 + l2) if not 1 <= data[p] <= 0x0F)
    struct.pack_into("<Q", data, mi + 1, land - (mi + 9))
    f.write_bytes(bytes(data[:-50]))  # and no footer: recover must scan
    recover(d)
    got = [m.data for m in BagReader(d).messages()]
    assert got == sent, f"{len(sent) - len(got)} of {len(sent)} messages of intact chunks lost"
