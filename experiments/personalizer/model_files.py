"""Model files going out (``GET /model``, optionally signed) and coming in (``PUT /model``).

A signed export is a zip archive of the model (``model.vw``), its metadata and an
HMAC-SHA256 signature of the metadata (which holds the model's SHA-256) made with
a key kept in the database, so ``PUT /model`` can tell an archive this server
signed from a tampered one. A model coming in as a plain VW file (exported by VW
or, unsigned, by the retired service) is vetted by ``bandit.model_import`` in a
separate process; the options stored in it become the experiment's settings.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import shlex
import zipfile

import numpy as np

from bandit.model_import import ModelInfo
from experiments.personalizer.config import policy_patch
from experiments.personalizer.errors import PersonalizerError

MAX_MODEL_BYTES = 64 * 1024**2
ENTRIES = ("model.vw", "metadata.json", "signature")
# options VW stores in every cb model, or that name the file it was loaded from: not settings
_INTERNAL = {"--cb_adf": 0, "--cb_explore_adf": 0, "--ccb_explore_adf": 0, "--cb_sample": 0, "--csoaa_rank": 0,
             "--no_stdin": 0, "--quiet": 0, "--csoaa_ldf": 1, "--initial_regressor": 1, "-i": 1,
             "--bit_precision": 1, "-b": 1, "--random_seed": 1}
_FLOAT = re.compile(r"^-?\d+\.\d{7,}$")


# -- signed archives -----------------------------------------------------------------------------
def signed_archive(model: bytes, metadata: dict, key: bytes) -> bytes:
    """Return a zip of the model, its metadata (with the model's SHA-256) and their signature."""
    meta = json.dumps({**metadata, "sha256": hashlib.sha256(model).hexdigest()}, sort_keys=True).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.vw", model)
        archive.writestr("metadata.json", meta)
        archive.writestr("signature", hmac.new(key, meta, hashlib.sha256).hexdigest())
    return out.getvalue()


def is_archive(blob: bytes) -> bool:
    return blob[:4] == b"PK\x03\x04"


def unpack(blob: bytes, key: bytes) -> bytes:
    """Return the model of a signed archive after checking its signature and digest."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
        infos = {info.filename: info for info in archive.infolist()}
        if set(infos) != set(ENTRIES) or sum(i.file_size for i in infos.values()) > MAX_MODEL_BYTES:
            raise _unsigned("it is not an archive exported by GET /model?signed=true")
        meta, signature = archive.read("metadata.json"), archive.read("signature").decode("ascii", "replace")
        if not hmac.compare_digest(hmac.new(key, meta, hashlib.sha256).hexdigest(), signature):
            raise _unsigned("its signature does not match (it was changed, or signed by another server)")
        model = archive.read("model.vw")
    except (zipfile.BadZipFile, OSError, EOFError, KeyError):
        raise _unsigned("the archive cannot be read") from None
    if hashlib.sha256(model).hexdigest() != json.loads(meta).get("sha256"):
        raise _unsigned("the model does not match its signed digest")
    return model


def _unsigned(reason: str) -> PersonalizerError:
    return PersonalizerError("InvalidModelImportSignature", f"Given model file is not signed or does not have a "
                             f"valid signature: {reason}.", "model")


# -- the settings an imported model brings -----------------------------------------------------------
def stored_options(arguments: str) -> str:
    """Return a model's stored VW options without those every cb model has (floats as VW meant them).

    >>> stored_options(" --cb_adf --cb_explore_adf --cb_type mtr --csoaa_ldf multiline --epsilon 0.200000002980232"
    ...                " --initial_regressor /tmp/m.vw --learning_rate 0.5 --quadratic :: --quiet")
    '--cb_type mtr --epsilon 0.2 --learning_rate 0.5 --quadratic ::'
    """
    tokens, out, i = shlex.split(arguments), [], 0
    while i < len(tokens):
        skip = _INTERNAL.get(tokens[i])
        if skip is not None:
            i += 1 + skip
            continue
        token = tokens[i]
        out.append(str(np.float32(token)) if _FLOAT.match(token) else token)
        i += 1
    return shlex.join(out)


def settings_patch(info: ModelInfo, slots: int, most_slots: int) -> dict:
    """The experiment settings a model stands for: its exploration, interactions, rate and other options."""
    options = stored_options(info.arguments)
    patch = policy_patch(("--ccb_explore_adf " if info.slate else "--cb_explore_adf ") + options)
    if patch["learning"]["vw_args"] == "--cb_type mtr":  # VW's default, stored in every model
        patch["learning"]["vw_args"] = ""
    if info.slate != (slots > 1):
        patch["slots"] = most_slots if info.slate else 1
    return patch
