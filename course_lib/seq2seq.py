"""Sequence to sequence (notebook 11; seed sections 6.2 and 3.4): the encoder-decoder of
notebook 04 trained to modernise the First Folio's spelling, one character at a time.

    sets = course_lib.spelling.load_spelling_set()  # {"train": Pairs, "test": Pairs}, by play
    vocab = CharVocab.build(texts)               # characters + <pad> <s> </s> <unk>
    b = make_batch(vocab, sources, targets)      # padded src (B, S), tgt_in / tgt_out (B, T)
    model = make_model(vocab, d_model=64, ...)   # transformer.EncoderDecoder
    train_model(model, vocab, sources, targets, steps=...)      # teacher forcing, AdamW
    greedy_decode(model, vocab, sources)         # the most likely character, step by step
    beam_search(model, vocab, source, beam_width=4, alpha=1.0)  # best hypotheses, by hand
    beam_step(log_probs, scores, k)              # one step of it: the k best continuations
    cross_attention(model, vocab, source, target)               # (layers, heads, T, S) maps

Shapes: B batch, S source length, T target length (both counted in characters, plus </s>),
V vocabulary size, K beams. The spelling set and the copy and rule baselines are
`course_lib.spelling`'s; exact match, CER and BLEU are `course_lib.metrics`'.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from course_lib import data
from course_lib.attention import MultiHeadAttention
from course_lib.checkpoints import atomic_save
from course_lib.spelling import load_spelling_set
from course_lib.transformer import EncoderDecoder, EncoderDecoderConfig, shift_right
from course_lib.validate import as_int, positive_int, same_length, text_list

MODEL_FILE = "spelling/model.pt"  # the shipped model: `python -m course_lib.seq2seq` trains it
# The shipped model's sizes and training run (the `cpu` profile of notebook 11 repeats it).
SHIPPED = dict(d_model=64, n_heads=4, n_layers=2, d_ff=256, max_len=128, dropout=0.1,
               steps=2500, batch_size=64, lr=3e-3, seed=0)  # fmt: skip
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
PAD, BOS, EOS, UNK = 0, 1, 2, 3


# --------------------------------------------------------------------------- data


# --------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class CharVocab:
    """Characters as ids: 0 <pad>, 1 <s> (start), 2 </s> (end), 3 <unk>, then the characters."""

    chars: tuple[str, ...]

    @classmethod
    def build(cls, texts: Sequence[str]) -> CharVocab:
        """Every character of `texts`, sorted (the same texts give the same ids)."""
        return cls(tuple(sorted(set("".join(text_list(texts, "texts"))))))

    def __len__(self) -> int:
        return len(SPECIALS) + len(self.chars)

    def encode(self, text: str) -> list[int]:
        """The ids of `text`'s characters (<unk> for an unseen one), without <s> or </s>."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        index = self._index()
        return [index.get(ch, UNK) for ch in text]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The text of `ids`: stops at the first </s>, skips <pad> and <s>, <unk> as '?'."""
        out = []
        for i in ids.tolist() if isinstance(ids, torch.Tensor) else ids:
            i = as_int(i, "id")
            if i == EOS:
                break
            if i == UNK:
                out.append("?")
            elif i >= len(SPECIALS):
                if i >= len(self):
                    raise ValueError(f"id {i} is not in this vocabulary of {len(self)}")
                out.append(self.chars[i - len(SPECIALS)])
        return "".join(out)

    def _index(self) -> dict[str, int]:
        cached = self.__dict__.get("_cache")
        if cached is None:
            cached = {ch: k + len(SPECIALS) for k, ch in enumerate(self.chars)}
            object.__setattr__(self, "_cache", cached)
        return cached


@dataclass
class Batch:
    """src (B, S) and src_mask (B, S), 1 = a real character; tgt_in (B, T) starts with <s>,
    tgt_out (B, T) ends with </s>, both <pad> after the end (None when no targets)."""

    src: torch.Tensor
    src_mask: torch.Tensor
    tgt_in: torch.Tensor | None = None
    tgt_out: torch.Tensor | None = None


def pad(rows: Sequence[Sequence[int]], value: int = PAD) -> torch.Tensor:
    """(B, L) int64: every row right-padded with `value` to the longest row's length L."""
    if len(rows) == 0:
        raise ValueError("rows is empty: pass at least one sequence of ids")
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
    return out


def make_batch(
    vocab: CharVocab, sources: Sequence[str], targets: Sequence[str] | None = None
) -> Batch:
    """Encode and pad: every source and target ends with </s>; tgt_in = shift_right(tgt_out)."""
    sources = text_list(sources, "sources")
    src = pad([vocab.encode(s) + [EOS] for s in sources])
    batch = Batch(src=src, src_mask=(src != PAD).long())
    if targets is not None:
        targets = text_list(targets, "targets")
        same_length(sources, targets, ("sources", "targets"))
        batch.tgt_out = pad([vocab.encode(t) + [EOS] for t in targets])
        batch.tgt_in = shift_right(batch.tgt_out, BOS)
    return batch


# --------------------------------------------------------------------------- the model


def sinusoidal_table(length: int, d_model: int) -> torch.Tensor:
    """(length, d_model): the 2017 paper's sine and cosine position vectors."""
    pos = torch.arange(positive_int(length, "length"), dtype=torch.float32)[:, None]
    i = torch.arange(0, positive_int(d_model, "d_model"), 2, dtype=torch.float32)
    angle = pos / 10000 ** (i / d_model)  # (length, ceil(D / 2))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return table


def make_model(
    vocab: CharVocab,
    d_model: int = 64,
    n_heads: int = 4,
    n_layers: int = 2,
    d_ff: int = 256,
    max_len: int = 128,
    dropout: float = 0.0,
    seed: int = 0,
) -> EncoderDecoder:
    """A character-level `EncoderDecoder` (source and target share `vocab`).

    Two choices help a small model learn to copy fast: one embedding matrix for the source
    and the target characters (an "e" read is an "e" written), and both position tables
    starting from the same sinusoidal vectors, so target position t starts out looking like
    source position t (both tables are still learned)."""
    torch.manual_seed(as_int(seed, "seed"))
    config = EncoderDecoderConfig(
        src_vocab_size=len(vocab),
        tgt_vocab_size=len(vocab),
        max_len=max_len,
        d_model=d_model,
        n_heads=n_heads,
        n_encoder_layers=n_layers,
        n_decoder_layers=n_layers,
        d_ff=d_ff,
        dropout=dropout,
    )
    model = EncoderDecoder(config)
    model.tgt_emb.weight = model.src_emb.weight  # shared characters
    with torch.no_grad():
        table = sinusoidal_table(max_len, d_model)
        model.src_pos.weight.copy_(table)
        model.tgt_pos.weight.copy_(table)
    return model


@contextmanager
def fast_attention(model: EncoderDecoder) -> Iterator[EncoderDecoder]:
    """Inside the block every attention layer of `model` runs `F.scaled_dot_product_attention`
    (the same function, proven equal in tests/test_attention.py, and faster; it keeps no
    weights to read); after it, the hand-written path again."""
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    before = [m.fast for m in layers]
    try:
        for m in layers:
            m.fast = True
        yield model
    finally:
        for m, fast in zip(layers, before, strict=True):
            m.fast = fast


def seq2seq_loss(model: EncoderDecoder, batch: Batch) -> torch.Tensor:
    """Teacher forcing: the decoder reads the true target prefix (tgt_in) and is scored on
    the next character (tgt_out) by cross-entropy, padding ignored. Returns a scalar."""
    if batch.tgt_in is None:
        raise ValueError("the batch has no targets: make_batch(vocab, sources, targets)")
    logits = model(batch.src, batch.tgt_in, batch.src_mask, (batch.tgt_in != PAD).long())
    return F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD)


def train_model(
    model: EncoderDecoder,
    vocab: CharVocab,
    sources: Sequence[str],
    targets: Sequence[str],
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    warmup: int = 50,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """AdamW with a linear warm-up and a cosine decay, on random batches of pairs drawn by
    length (pairs of similar length share a batch, so little of it is padding). Returns the
    training loss of every step; the model is left in eval mode."""
    sources, targets = text_list(sources, "sources"), text_list(targets, "targets")
    same_length(sources, targets, ("sources", "targets"))
    steps, batch_size = positive_int(steps, "steps"), positive_int(batch_size, "batch_size")
    gen = torch.Generator().manual_seed(as_int(seed, "seed"))
    by_length = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, min(as_int(warmup, "warmup"), steps))

    def rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, rate)
    model.train()
    losses = []
    bar = range(steps)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc="training", leave=False)
    with fast_attention(model):
        for _ in bar:
            start = int(torch.randint(max(1, len(by_length) - batch_size + 1), (1,), generator=gen))
            idx = by_length[start : start + batch_size]
            batch = make_batch(vocab, [sources[i] for i in idx], [targets[i] for i in idx])
            loss = seq2seq_loss(model, batch)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
    model.eval()
    return losses


# --------------------------------------------------------------------------- the shipped model


def save_model(model: EncoderDecoder, vocab: CharVocab, path: str | Path, settings: dict) -> Path:
    """Write the model's config, its characters, the training `settings` and its weights in
    float16 (half the bytes; the shared target embedding stored once), atomically."""
    state = {
        k: v.detach().to(torch.float16)
        for k, v in model.state_dict().items()
        if k != "tgt_emb.weight"
    }
    payload = {"config": asdict(model.config), "chars": list(vocab.chars), "settings": settings}
    return atomic_save({**payload, "state": state}, path)


def load_model(path: str | Path) -> tuple[EncoderDecoder, CharVocab, dict]:
    """(model in eval mode, vocab, settings) from a file written by `save_model`."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    vocab = CharVocab(tuple(payload["chars"]))
    c = payload["config"]
    model = make_model(
        vocab,
        d_model=c["d_model"],
        n_heads=c["n_heads"],
        n_layers=c["n_encoder_layers"],
        d_ff=c["d_ff"],
        max_len=c["max_len"],
    )
    state = {k: v.float() for k, v in payload["state"].items()}
    state["tgt_emb.weight"] = state["src_emb.weight"]
    model.load_state_dict(state)
    return model.eval(), vocab, payload["settings"]


def load_shipped() -> tuple[EncoderDecoder, CharVocab, dict]:
    """The shipped model (data/spelling/model.pt, checked against the manifest's sha256)."""
    return load_model(data.verify(MODEL_FILE))


def train_shipped(out: str | Path | None = None) -> Path:
    """Train the shipped model from scratch (SHIPPED, on the training plays) and save it."""
    sets = load_spelling_set()
    train = sets["train"]
    vocab = CharVocab.build(train.sources + train.targets)
    size = ("d_model", "n_heads", "n_layers", "d_ff", "max_len", "dropout", "seed")
    model = make_model(vocab, **{k: SHIPPED[k] for k in size})
    run = ("steps", "batch_size", "lr", "seed")
    train_model(model, vocab, train.sources, train.targets, **{k: SHIPPED[k] for k in run})
    return save_model(model, vocab, out or data.data_dir() / MODEL_FILE, dict(SHIPPED))


# --------------------------------------------------------------------------- decoding


def _max_steps(source_len: int, model: EncoderDecoder, max_len: int | None) -> int:
    """How many positions (with <s>) a decoded line may take: its source's length (with </s>)
    and a half more, plus 10, within the model's max_len (or `max_len`)."""
    source_len = int(source_len)
    limit = model.config.max_len
    if max_len is None:
        return min(limit, source_len + source_len // 2 + 10)
    return min(limit, positive_int(max_len, "max_len"))


@torch.no_grad()
def greedy_decode(
    model: EncoderDecoder,
    vocab: CharVocab,
    sources: Sequence[str],
    max_len: int | None = None,
    batch_size: int = 256,
) -> list[str]:
    """Decode each source by taking the most likely character at every step until </s>.

    The encoder runs once per batch; the decoder re-reads the whole prefix each step (no
    cache: simple, and fast enough for lines of under 100 characters)."""
    sources = text_list(sources, "sources")
    model.eval()
    with fast_attention(model):
        return _greedy(model, vocab, sources, max_len, positive_int(batch_size, "batch_size"))


def _greedy(model, vocab, sources, max_len, batch_size) -> list[str]:
    out = []
    for s in range(0, len(sources), batch_size):
        batch = make_batch(vocab, sources[s : s + batch_size])
        memory = model.encode(batch.src, batch.src_mask)  # (B, S, D)
        ys = torch.full((len(batch.src), 1), BOS, dtype=torch.long)  # (B, 1)
        done = torch.zeros(len(batch.src), dtype=torch.bool)
        # each line stops at its own limit (as it would alone), however long the batch's longest
        limits = torch.tensor([_max_steps(n, model, max_len) - 1 for n in batch.src_mask.sum(1)])
        for step in range(int(limits.max())):
            logits = model.decode(ys, memory, batch.src_mask)[:, -1]  # (B, V)
            nxt = logits.argmax(dim=-1).masked_fill(done, PAD)  # (B,)
            ys = torch.cat([ys, nxt[:, None]], dim=1)
            done |= (nxt == EOS) | (limits <= step + 1)
            if done.all():
                break
        out += [vocab.decode(row[1:]) for row in ys]
    return out


def beam_step(
    log_probs: torch.Tensor, scores: torch.Tensor, beam_width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of beam search: the `beam_width` best one-character continuations.

    log_probs (K, V): log p(next character | beam k's prefix); scores (K,): each beam's
    summed log-probability so far. A continuation's score is scores[k] + log_probs[k, v];
    returns (new_scores (W,), beam (W,), token (W,)), best first, W = min(beam_width, K * V).
    """
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be (beams, vocab), got shape {tuple(log_probs.shape)}")
    if scores.shape != log_probs.shape[:1]:
        raise ValueError(
            f"scores shape {tuple(scores.shape)} must be ({log_probs.shape[0]},), one per beam"
        )
    width = positive_int(beam_width, "beam_width")
    total = scores[:, None] + log_probs  # (K, V)
    best, flat = total.flatten().topk(min(width, total.numel()))  # (W,), (W,)
    vocab_size = log_probs.shape[1]
    return best, flat // vocab_size, flat % vocab_size


def length_normalised(score: float, length: int, alpha: float) -> float:
    """score / length ** alpha: alpha 0 ranks by the summed log-probability (which favours
    short outputs, every character costing some), alpha 1 by the mean per character."""
    if positive_int(length, "length") and alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    return score / length**alpha


@torch.no_grad()
def beam_search(
    model: EncoderDecoder,
    vocab: CharVocab,
    source: str,
    beam_width: int = 4,
    alpha: float = 1.0,
    max_len: int | None = None,
) -> list[tuple[str, float]]:
    """Beam search for one source: (text, length-normalised score) hypotheses, best first.

    Keeps the `beam_width` highest-scoring prefixes; a prefix that picks </s> is finished
    (its length counts the </s>). Stops when `beam_width` hypotheses have finished or no
    prefix is left. Width 1 takes the most likely character every step: greedy decoding."""
    width = positive_int(beam_width, "beam_width")
    (source,) = text_list([source], "source")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    model.eval()
    with fast_attention(model):
        return _beam(model, vocab, source, width, alpha, max_len)


def _beam(model, vocab, source, width, alpha, max_len) -> list[tuple[str, float]]:
    batch = make_batch(vocab, [source])
    memory = model.encode(batch.src, batch.src_mask)  # (1, S, D)
    prefixes = torch.full((1, 1), BOS, dtype=torch.long)  # (K, t)
    scores = torch.zeros(1)  # (K,)
    finished: list[tuple[list[int], float]] = []
    steps = _max_steps(batch.src.shape[1], model, max_len) - 1
    for _ in range(steps):
        k = len(prefixes)
        logits = model.decode(
            prefixes, memory.expand(k, -1, -1), batch.src_mask.expand(k, -1)
        )  # (K, t, V)
        log_probs = logits[:, -1].log_softmax(dim=-1)  # (K, V)
        new_scores, beam, token = beam_step(log_probs, scores, width - len(finished))
        alive = token != EOS
        for b, s in zip(beam[~alive].tolist(), new_scores[~alive].tolist(), strict=True):
            ids = prefixes[b, 1:].tolist()
            finished.append((ids, length_normalised(s, len(ids) + 1, alpha)))
        if len(finished) >= width or not alive.any():
            break
        prefixes = torch.cat([prefixes[beam[alive]], token[alive][:, None]], dim=1)
        scores = new_scores[alive]
    else:  # out of steps: the prefixes still alive count as they are
        for ids, s in zip(prefixes[:, 1:].tolist(), scores.tolist(), strict=True):
            finished.append((ids, length_normalised(s, len(ids), alpha)))
    finished.sort(key=lambda h: -h[1])
    return [(vocab.decode(ids), score) for ids, score in finished]


def beam_decode(
    model: EncoderDecoder,
    vocab: CharVocab,
    sources: Sequence[str],
    beam_width: int = 4,
    alpha: float = 1.0,
    max_len: int | None = None,
) -> list[str]:
    """The best hypothesis of `beam_search` for every source."""
    sources = text_list(sources, "sources")
    return [beam_search(model, vocab, s, beam_width, alpha, max_len)[0][0] for s in sources]


@torch.no_grad()
def cross_attention(
    model: EncoderDecoder, vocab: CharVocab, source: str, target: str
) -> torch.Tensor:
    """(layers, heads, T, S): each decoder layer's cross-attention weights while it reads
    `target` (teacher-forced) against `source`. Row t is where the decoder looked while
    predicting target character t (the last row: </s>); column s is source character s (the
    last column: the source's </s>). Every row sums to 1."""
    batch = make_batch(vocab, [source], [target])
    model.eval()
    model(batch.src, batch.tgt_in, batch.src_mask)
    maps = [block.cross_attn.last_weights for block in model.decoder]  # each (1, H, T, S)
    return torch.stack([m[0] for m in maps])


if __name__ == "__main__":  # python -m course_lib.seq2seq: retrain the shipped model
    path = train_shipped()
    print(f"wrote {path}; record it: python data/build_corpus.py --register {MODEL_FILE}")
