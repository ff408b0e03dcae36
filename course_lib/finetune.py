"""Fine-tuning for classification (notebook 10; seed sections 2.9, 3.4, 6.3).

The task: which genre of the First Folio (comedy, history, tragedy) a passage comes from,
tested on plays no classifier saw (data/genre/passages.tsv, built by data/build_corpus.py).

    sets = load_genre_set()                      # {"train": GenreSplit, "test": GenreSplit}
    load_sentiment_set()                         # the course's own 300 labelled sentences
    small = sample_per_play(sets["train"], 10)   # 10 passages of every play
    majority_predict(train_labels, n)            # the baseline every model must beat
    vocab = build_vocab(texts); x = bag_of_words(texts, vocab)   # (N, V) word counts
    head = fit_logistic(x, labels, num_classes)  # L2 logistic regression, sklearn's optimum
    choose_l2(x, labels, plays, num_classes)     # its L2 strength, by leave-plays-out folds
    hidden, mask = gpt_states(model, tokenizer, texts); pool(hidden, mask, "last")  # (N, D)
    minilm_batch(tokenizer, texts) -> (ids, mask); encoder_states(bert, ids, mask, upto)
    TopLayersClassifier(layers, d_model, num_classes)            # fine-tune the last layers
    train_classifier(module, inputs, labels, ...); predict(module, inputs)

Frozen features are computed once (no gradient); only a linear head, or the last encoder
layer(s) plus the head, is trained: cheap enough for the `ci` profile on a CPU.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from course_lib import bert, data, metrics
from course_lib.transformer import key_mask
from course_lib.validate import positive_int

GENRES = ("comedy", "history", "tragedy")
GENRE_FILE = "genre/passages.tsv"
POOLS = ("last", "mean")
WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")


@dataclass
class GenreSplit:
    """Passages of one split: texts (N strings), labels (N,) int64 indices into GENRES, plays."""

    texts: list[str]
    labels: torch.Tensor
    plays: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def load_genre_set() -> dict[str, GenreSplit]:
    """{"train": ..., "test": ...} from data/genre/passages.tsv, verified by its sha256.

    The split is by play (the test plays are whole plays, none of them seen in training)."""
    lines = data.load_text(GENRE_FILE).splitlines()
    if lines[0].split("\t") != ["play", "genre", "split", "text"]:
        raise ValueError(f"data/{GENRE_FILE}: unexpected header {lines[0]!r}")
    out: dict[str, GenreSplit] = {}
    for split in ("train", "test"):
        rows = [line.split("\t") for line in lines[1:] if line.split("\t")[2] == split]
        out[split] = GenreSplit(
            texts=[r[3] for r in rows],
            labels=torch.tensor([GENRES.index(r[1]) for r in rows]),
            plays=[r[0] for r in rows],
        )
    return out


SENTIMENTS = ("negative", "neutral", "positive")
SENTIMENT_FILE = "sentiment/sentences.tsv"


@dataclass
class SentimentSplit:
    """Sentences of one split: texts (N), labels (N,) int64 indices into SENTIMENTS, topics (N)."""

    texts: list[str]
    labels: torch.Tensor
    topics: list[int]

    def __len__(self) -> int:
        return len(self.texts)


def load_sentiment_set(test_every: int = 4) -> dict[str, SentimentSplit]:
    """{"train": ..., "test": ...} from data/sentiment/sentences.tsv (the course's own 300
    sentences: 100 topics, each with one negative, one neutral and one positive sentence).

    Split by topic: topic t is a test topic when t % test_every == 0, so a test sentence's
    topic never occurs in training and the label cannot be read off the subject matter."""
    test_every = positive_int(test_every, "test_every")
    lines = data.load_text(SENTIMENT_FILE).splitlines()
    if lines[0].split("\t") != ["topic", "label", "text"]:
        raise ValueError(f"data/{SENTIMENT_FILE}: unexpected header {lines[0]!r}")
    rows = [line.split("\t") for line in lines[1:]]
    out = {}
    for split in ("train", "test"):
        keep = [r for r in rows if (int(r[0]) % test_every == 0) == (split == "test")]
        out[split] = SentimentSplit(
            texts=[r[2] for r in keep],
            labels=torch.tensor([SENTIMENTS.index(r[1]) for r in keep]),
            topics=[int(r[0]) for r in keep],
        )
    return out


def sample_per_play(split: GenreSplit, per_play: int, seed: int = 0) -> GenreSplit:
    """At most `per_play` passages of every play, drawn with a local generator, in file order."""
    per_play = positive_int(per_play, "per_play")
    if not isinstance(split, GenreSplit):
        raise TypeError(f"split must be a GenreSplit, got {type(split).__name__}")
    gen = torch.Generator().manual_seed(seed)
    keep = []
    for play in sorted(set(split.plays)):
        rows = [i for i, p in enumerate(split.plays) if p == play]
        order = torch.randperm(len(rows), generator=gen)[:per_play]
        keep += [rows[i] for i in order.tolist()]
    keep.sort()
    return GenreSplit(
        [split.texts[i] for i in keep], split.labels[keep], [split.plays[i] for i in keep]
    )


def majority_predict(train_labels: torch.Tensor, n: int, num_classes: int) -> torch.Tensor:
    """(n,) predictions that are all the most frequent training label (ties: the lowest)."""
    if not isinstance(train_labels, torch.Tensor) or train_labels.is_floating_point():
        raise TypeError("train_labels must be an integer tensor of class indices")
    if train_labels.numel() == 0:
        raise ValueError("train_labels is empty: there is no majority class")
    counts = torch.bincount(train_labels.long(), minlength=positive_int(num_classes, "num_classes"))
    if len(counts) > num_classes or train_labels.min() < 0:
        raise ValueError(f"train_labels must lie in [0, {num_classes})")
    return torch.full((int(n),), int(counts.argmax()), dtype=torch.long)


def words(text: str) -> list[str]:
    """Lower-cased words (letters, inner apostrophes): "Giue me excesse" -> giue, me, excesse."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    return WORD_RE.findall(text.lower())


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError("texts must be a list of strings")
    if len(texts) == 0:
        raise ValueError("texts is empty: nothing to classify")
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"texts must hold strings, got a {type(t).__name__}")
    return list(texts)


def build_vocab(texts: Sequence[str], min_count: int = 2) -> list[str]:
    """The words seen at least `min_count` times in `texts`, sorted: the bag-of-words columns."""
    counts = Counter(w for t in _check_texts(texts) for w in words(t))
    min_count = positive_int(min_count, "min_count")
    return sorted(w for w, c in counts.items() if c >= min_count)


def bag_of_words(texts: Sequence[str], vocab: Sequence[str]) -> torch.Tensor:
    """(N, V) float32: entry [i, j] = how often vocab[j] occurs in texts[i] (unknown words
    dropped), divided by the passage's word count so long and short passages are comparable."""
    texts = _check_texts(texts)
    column = {w: j for j, w in enumerate(vocab)}
    if len(column) == 0:
        raise ValueError("vocab is empty")
    x = torch.zeros(len(texts), len(column))
    for i, t in enumerate(texts):
        ws = words(t)
        for w in ws:
            if w in column:
                x[i, column[w]] += 1.0
        x[i] /= max(len(ws), 1)
    return x


def _check_xy(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 2:
        raise TypeError("features must be a float tensor (N, D)")
    if not isinstance(y, torch.Tensor) or y.is_floating_point():
        raise TypeError("labels must be an integer tensor (N,)")
    if len(x) == 0:
        raise ValueError("features is empty: nothing to train on")
    if y.shape != (len(x),):
        raise ValueError(f"labels {tuple(y.shape)} must be ({len(x)},), one per feature row")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got {y.min()}..{y.max()}")


def fit_logistic(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float = 1.0, max_iter: int = 500
) -> nn.Linear:
    """Multinomial logistic regression fitted to convergence (L-BFGS, float64): x (N, D),
    y (N,) -> nn.Linear(D, C), float32.

    Minimises mean cross-entropy + l2 / (2 N) * ||W||^2 (the bias is not penalised): the same
    optimum as sklearn's LogisticRegression(C=1 / l2), whose loss is C * summed cross-entropy +
    ||W||^2 / 2 (tests/test_finetune.py compares the two).
    """
    num_classes = positive_int(num_classes, "num_classes")
    _check_xy(x, y, num_classes)
    if isinstance(l2, bool) or not isinstance(l2, int | float) or l2 < 0:
        raise ValueError(f"l2 must be a non-negative number, got {l2!r}")
    xd, yl = x.double(), y.long()
    w = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(xd @ w + b, yl) + l2 / (2 * len(x)) * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    head = nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        head.weight.copy_(w.T)
        head.bias.copy_(b)
    return head


def choose_l2(
    x: torch.Tensor,
    y: torch.Tensor,
    groups: Sequence[str],
    num_classes: int,
    grid: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
    folds: int = 3,
) -> tuple[float, dict[float, float]]:
    """The L2 strength of `grid` with the best mean macro F1 over leave-groups-out folds of the
    training data: (best l2, {l2: mean macro F1}). Group g (sorted) goes to fold i % folds, so
    the passages of one play are never split between fitting and scoring; the test set is
    never touched. Ties: the first in `grid`."""
    _check_xy(x, y, positive_int(num_classes, "num_classes"))
    if len(groups) != len(x):
        raise ValueError(f"groups must name one group per row: {len(groups)} for {len(x)}")
    names = sorted(set(groups))
    folds = positive_int(folds, "folds")
    if len(names) < folds or folds < 2:
        raise ValueError(f"folds must be in [2, {len(names)}] (the number of groups), got {folds}")
    fold = torch.tensor([names.index(g) % folds for g in groups])
    scores = {}
    for l2 in grid:
        per_fold = []
        for k in range(folds):
            fit, held = fold != k, fold == k
            head = fit_logistic(x[fit], y[fit], num_classes, l2=l2)
            with torch.no_grad():
                pred = head(x[held]).argmax(dim=-1)
            per_fold.append(metrics.macro_f1(y[held], pred, num_classes))
        scores[l2] = sum(per_fold) / folds
    best = max(grid, key=lambda l2: (scores[l2], -list(grid).index(l2)))
    return best, scores


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """One vector per text from one per position: hidden (B, T, D), mask (B, T) 1/0 -> (B, D).

    "last": the vector at each text's last real position (for a causal GPT the only one that
    has read the whole text); "mean": the average over real positions."""
    if how not in POOLS:
        raise ValueError(f"how must be one of {POOLS}, got {how!r}")
    if hidden.dim() != 3 or mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"hidden (B, T, D) and mask (B, T) must agree, got {tuple(hidden.shape)} and "
            f"{tuple(mask.shape)}"
        )
    lengths = mask.long().sum(dim=1)  # (B,)
    if (lengths == 0).any():
        raise ValueError("every row of mask needs at least one real position")
    if how == "mean":
        return bert.mean_pool(hidden, mask)
    return hidden[torch.arange(len(hidden)), lengths - 1]  # (B, D); right padding


@torch.no_grad()
def gpt_states(
    model: nn.Module, tokenizer, texts: Sequence[str], batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen states of the course GPT: (hidden (N, T, D), mask (N, T) int64), T <= block_size.

    Each text is encoded by `tokenizer`, cut to the model's block_size (its first tokens) and
    right-padded with 0 (mask 0). hidden is the output of `model.norm`, the vectors the LM head
    reads, captured with a forward hook so the model's own forward runs unchanged. Pool it
    with `pool(hidden, mask, "last" | "mean")`."""
    texts = _check_texts(texts)
    batch_size = positive_int(batch_size, "batch_size")
    block = model.config.block_size
    ids = [tokenizer.encode(t)[:block] or [0] for t in texts]
    width = max(len(i) for i in ids)
    batch = torch.zeros(len(ids), width, dtype=torch.long)  # (N, T)
    mask = torch.zeros(len(ids), width, dtype=torch.long)
    for r, i in enumerate(ids):
        batch[r, : len(i)] = torch.tensor(i)
        mask[r, : len(i)] = 1
    captured: list[torch.Tensor] = []
    hook = model.norm.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model.eval()
        for s in range(0, len(ids), batch_size):
            model(batch[s : s + batch_size], attention_mask=mask[s : s + batch_size])
    finally:
        hook.remove()
    return torch.cat(captured), mask


def minilm_batch(tokenizer, texts: Sequence[str], max_len: int = 128):
    """(ids (N, T), mask (N, T)) int64 from the MiniLM WordPiece tokenizer, padded, cut."""
    texts = _check_texts(texts)
    enc = tokenizer(
        texts, padding=True, truncation=True, max_length=positive_int(max_len, "max_len"),
        return_tensors="pt",
    )  # fmt: skip
    return enc["input_ids"], enc["attention_mask"]


@torch.no_grad()
def encoder_states(
    bert: nn.Module, ids: torch.Tensor, mask: torch.Tensor, upto: int, batch_size: int = 64
) -> torch.Tensor:
    """(N, T, D): the hidden states after the first `upto` layers of a course_lib.bert.Bert
    (upto=0: the embeddings' output), computed once without gradients."""
    n_layers = len(bert.layers)
    if isinstance(upto, bool) or not isinstance(upto, int) or not 0 <= upto <= n_layers:
        raise ValueError(f"upto must be an int in [0, {n_layers}], got {upto!r}")
    bert.eval()
    out = []
    for s in range(0, len(ids), positive_int(batch_size, "batch_size")):
        hidden = bert(ids[s : s + batch_size], mask[s : s + batch_size]).hidden_states
        out.append(hidden[upto])
    return torch.cat(out)


class TopLayersClassifier(nn.Module):
    """Trainable copies of a Bert's top layers, mean pooling, then a linear head.

    forward(states (B, T, D) after the frozen layers, mask (B, T)) -> logits (B, C). With no
    layers it is a linear head on mean-pooled frozen features."""

    def __init__(self, layers: Sequence[nn.Module], d_model: int, num_classes: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for layer in layers)
        self.head = nn.Linear(positive_int(d_model, "d_model"), positive_int(num_classes, "nc"))

    def features(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, D): the top layers' output, mean-pooled over the real positions."""
        x = states
        keys = key_mask(mask, mask) if len(self.layers) else None
        for layer in self.layers:
            x = layer(x, mask=keys)
        return pool(x, mask, "mean")

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(states, mask))


def _rows(inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    parts = inputs if isinstance(inputs, tuple) else (inputs,)
    if not parts or any(not isinstance(p, torch.Tensor) for p in parts):
        raise TypeError("inputs must be a tensor or a tuple of tensors")
    if len({len(p) for p in parts}) != 1 or len(parts[0]) == 0:
        raise ValueError("inputs must be non-empty and agree on their first (batch) axis")
    return parts


def train_classifier(
    module: nn.Module,
    inputs: torch.Tensor | tuple[torch.Tensor, ...],
    labels: torch.Tensor,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 32,
    weight_decay: float = 0.01,
    seed: int = 0,
) -> list[float]:
    """Train `module(*inputs_batch) -> logits (B, C)` with AdamW on cross-entropy; returns the
    mean loss of each epoch. inputs: a tensor (N, ...) or a tuple of them; labels (N,)."""
    parts = _rows(inputs)
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point():
        raise TypeError("labels must be an integer tensor (N,)")
    if labels.shape != (len(parts[0]),):
        raise ValueError(f"labels {tuple(labels.shape)} must be ({len(parts[0])},)")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    module.train()
    losses = []
    for _ in range(positive_int(epochs, "epochs")):
        order = torch.randperm(len(labels), generator=gen)
        total = 0.0
        for s in range(0, len(order), positive_int(batch_size, "batch_size")):
            idx = order[s : s + batch_size]
            loss = nn.functional.cross_entropy(module(*(p[idx] for p in parts)), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(order))
    module.eval()
    return losses


@torch.no_grad()
def predict(
    module: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...], batch_size: int = 256
) -> torch.Tensor:
    """(N,) int64: the highest-scoring class of each row, module in eval mode."""
    parts = _rows(inputs)
    module.eval()
    out = [
        module(*(p[s : s + batch_size] for p in parts)).argmax(dim=-1)
        for s in range(0, len(parts[0]), positive_int(batch_size, "batch_size"))
    ]
    return torch.cat(out)
