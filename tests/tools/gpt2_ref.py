#!/usr/bin/env python3
"""Reference GPT-2 byte-level BPE encoder, written from the published
algorithm (Radford et al. 2019, the `encoder.py` of the GPT-2 release):
Python's `regex` module runs the pre-tokenisation pattern, bytes map to the
byte-level alphabet, and each piece is merged by repeatedly joining every
occurrence of its lowest-rank pair. Used by tests/e2e/test_tokenizer.sh to
check that sealora's ids equal the reference's.

usage: gpt2_ref.py DIR < text   (DIR holds vocab.json and merges.txt)
Prints the ids on one line. Text must be valid UTF-8; <|endoftext|> in it is
taken as the special token, as Hugging Face's tokenizers do."""
import json
import sys

import regex

PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
EOT = "<|endoftext|>"


def byte_alphabet():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def main():
    d = sys.argv[1]
    vocab = json.load(open(d + "/vocab.json", encoding="utf-8"))
    ranks = {}
    for line in open(d + "/merges.txt", encoding="utf-8").read().split("\n"):
        if not line or line.startswith("#version"):
            continue
        a, b = line.split(" ")
        ranks[(a, b)] = len(ranks)
    alpha = byte_alphabet()

    def bpe(piece):
        word = [alpha[b] for b in piece.encode("utf-8")]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
            if best not in ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == best[0] and word[i + 1] == best[1]:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return [vocab[w] for w in word]

    text = sys.stdin.buffer.read().decode("utf-8")
    ids = []
    for k, seg in enumerate(text.split(EOT)):
        if k:
            ids.append(vocab[EOT])
        for piece in PAT.findall(seg):
            ids.extend(bpe(piece))
    print(" ".join(map(str, ids)))


main()
