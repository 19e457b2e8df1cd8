"""Real vLLM still answers like the committed recordings (tests/fakes/recordings/vllm-0.32.0),
which the fake is held to (tests/unit/test_fake_vllm_recordings.py): a vLLM upgrade that
changes a shape fails here. The fresh recording is written next to the test's tmp_path for a
diff; with CHATMUX_RERECORD=1 it replaces the committed one (then make the fake match it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.fakes.vllm_shapes import compare
from tests.vllm_real.recording import load, record, write

RECORDINGS = Path(__file__).resolve().parents[1] / "fakes" / "recordings" / "vllm-0.32.0"


async def test_real_vllm_answers_like_the_recordings(spec_server, tmp_path):
    about = json.loads((RECORDINGS / "about.json").read_text())
    rerecord = os.environ.get("CHATMUX_RERECORD") == "1"
    server = (spec_server.served_name, spec_server.max_model_len, spec_server.k)
    if rerecord:  # the server's configuration becomes the recordings'
        about.update(served_model_name=server[0], max_model_len=server[1],
                     num_speculative_tokens=server[2])
    assert server == (about["served_model_name"], about["max_model_len"],
                      about["num_speculative_tokens"]), "recorded from another configuration"
    observed = await record(spec_server.root)
    version = observed["version"].json()["version"]
    out = RECORDINGS if rerecord else tmp_path / "now"
    write(observed, out, {**about, "vllm_version": version})
    found = compare(load(RECORDINGS), observed)
    assert not found, (f"vLLM {version} answers differently from the recordings of "
                       f"{about['vllm_version']} (the new ones are in {out}):\n" + "\n".join(found))
