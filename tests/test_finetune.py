"""course_lib.finetune: the genre set, bag-of-words logistic regression, frozen features, heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import bert as B
from course_lib import finetune as ft
from course_lib import transformer as T
from course_lib.tokenizers import CharTokenizer

# --------------------------------------------------------------------------- the genre set


@pytest.fixture(scope="module")
def genre():
    return ft.load_genre_set()


def test_genre_set_is_split_by_play(genre):
    train, test = genre["train"], genre["test"]
    assert len(train) + len(test) == 1400 and len(test) == 9 * 40
    assert not set(train.plays) & set(test.plays)
    assert len(set(test.plays)) >= 7
    assert torch.bincount(test.labels, minlength=3).tolist() == [160, 80, 120]
    assert train.labels.dtype == torch.long and len(train.labels) == len(train.texts)


def test_sample_per_play_is_seeded_and_keeps_every_play(genre):
    small = ft.sample_per_play(genre["train"], 5, seed=3)
    assert len(small) == 5 * len(set(genre["train"].plays))
    assert set(small.plays) == set(genre["train"].plays)
    assert ft.sample_per_play(genre["train"], 5, seed=3).texts == small.texts
    assert ft.sample_per_play(genre["train"], 5, seed=4).texts != small.texts
    for text, label, play in zip(small.texts, small.labels, small.plays, strict=True):
        i = genre["train"].texts.index(text)
        assert genre["train"].labels[i] == label and genre["train"].plays[i] == play
    with pytest.raises(ValueError, match="per_play"):
        ft.sample_per_play(genre["train"], 0)
    with pytest.raises(TypeError, match="GenreSplit"):
        ft.sample_per_play(["a"], 1)


def test_majority_predict():
    got = ft.majority_predict(torch.tensor([2, 1, 2, 1, 0]), 4, 3)
    assert got.tolist() == [1, 1, 1, 1]  # a tie between 1 and 2: the lowest
    with pytest.raises(ValueError, match="empty"):
        ft.majority_predict(torch.tensor([], dtype=torch.long), 3, 3)
    with pytest.raises(TypeError, match="integer"):
        ft.majority_predict(torch.tensor([0.0]), 3, 3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        ft.majority_predict(torch.tensor([0, 5]), 3, 3)


# --------------------------------------------------------------------------- bag of words


def test_bag_of_words_by_hand():
    texts = ["Loue, loue and Warre", "warre is warre", "Hamlet's loue"]
    vocab = ft.build_vocab(texts, min_count=2)
    assert vocab == ["loue", "warre"]
    x = ft.bag_of_words(texts, vocab)  # (3, 2), counts / words in the passage
    expected = torch.tensor([[2 / 4, 1 / 4], [0.0, 2 / 3], [1 / 2, 0.0]])
    torch.testing.assert_close(x, expected)
    assert ft.words("O'er the Seas") == ["o'er", "the", "seas"]


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: ft.build_vocab([]), ValueError, "empty"),
        (lambda: ft.build_vocab("one text"), TypeError, "list of strings"),
        (lambda: ft.build_vocab(["a", 3]), TypeError, "hold strings"),
        (lambda: ft.bag_of_words(["a"], []), ValueError, "vocab is empty"),
        (lambda: ft.words(None), TypeError, "string"),
    ],
)
def test_bag_of_words_bad_input(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def _blobs(n=60, d=4, c=3, seed=0, gap=1.5):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    x = torch.randn(n, d, generator=gen) + gap * torch.nn.functional.one_hot(y, d).float()
    return x, y


@pytest.mark.parametrize("l2", [0.1, 1.0, 10.0])
def test_fit_logistic_equals_sklearn(l2):
    from sklearn import linear_model  # the reference (the test extra declares scikit-learn)

    x, y = _blobs()
    head = ft.fit_logistic(x, y, 3, l2=l2)
    ours = torch.softmax(head(x).double(), dim=-1).detach().numpy()
    ref = linear_model.LogisticRegression(C=1 / l2, tol=1e-10, max_iter=10_000).fit(x, y)
    # the probabilities are unique (the biases are only up to a common shift)
    np.testing.assert_allclose(ours, ref.predict_proba(x.numpy()), atol=1e-5)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (
            lambda: ft.fit_logistic(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 2),
            ValueError,
            "empty",
        ),
        (
            lambda: ft.fit_logistic(torch.zeros(3, 2), torch.tensor([0, 1]), 2),
            ValueError,
            "one per",
        ),
        (
            lambda: ft.fit_logistic(torch.zeros(2, 2), torch.tensor([0, 2]), 2),
            ValueError,
            r"\[0, 2\)",
        ),
        (
            lambda: ft.fit_logistic(torch.zeros(2, 2, dtype=torch.long), torch.tensor([0, 1]), 2),
            TypeError,
            "float",
        ),
        (
            lambda: ft.fit_logistic(torch.zeros(2, 2), torch.tensor([0.0, 1.0]), 2),
            TypeError,
            "integer",
        ),
        (
            lambda: ft.fit_logistic(torch.zeros(2, 2), torch.tensor([0, 1]), 2, l2=-1),
            ValueError,
            "l2",
        ),
    ],
)
def test_fit_logistic_bad_input(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


# --------------------------------------------------------------------------- pooling, features


def test_pool_last_and_mean_by_hand():
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)  # (B=2, T=3, D=2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(
        ft.pool(hidden, mask, "last"), torch.stack([hidden[0, 1], hidden[1, 2]])
    )
    torch.testing.assert_close(
        ft.pool(hidden, mask, "mean"), torch.stack([hidden[0, :2].mean(0), hidden[1].mean(0)])
    )
    with pytest.raises(ValueError, match="how must be"):
        ft.pool(hidden, mask, "first")
    with pytest.raises(ValueError, match="must agree"):
        ft.pool(hidden, mask[:, :2], "last")
    with pytest.raises(ValueError, match="at least one real"):
        ft.pool(hidden, torch.tensor([[0, 0, 0], [1, 1, 1]]), "mean")


def test_gpt_states_ignore_padding_and_cut_to_the_block():
    tok = CharTokenizer.train("abcdefgh ")
    torch.manual_seed(0)
    model = T.GPT(T.GPTConfig(tok.vocab_size, 8, 16, 2, 2, 32))
    texts = ["abc", "abcdefgh hgf"]  # the second is cut to 8 characters
    hidden, mask = ft.gpt_states(model, tok, texts, batch_size=1)
    assert hidden.shape == (2, 8, 16) and mask.sum(dim=1).tolist() == [3, 8]
    captured = []
    handle = model.norm.register_forward_hook(lambda _m, _i, out: captured.append(out))
    with torch.no_grad():
        model(torch.tensor([tok.encode("abc")]))
    handle.remove()
    # right padding cannot change a causal model's vectors at the real positions
    torch.testing.assert_close(hidden[0, :3], captured[0][0])
    torch.testing.assert_close(ft.pool(hidden, mask, "last")[0], captured[0][0, 2])
    with pytest.raises(ValueError, match="empty"):
        ft.gpt_states(model, tok, [])


def _tiny_bert(seed=0):
    torch.manual_seed(seed)
    cfg = B.BertConfig(vocab_size=20, max_position=16, d_model=8, n_heads=2, n_layers=2, d_ff=16)
    return B.Bert(cfg).eval()


def test_encoder_states_and_top_layers_equal_the_whole_encoder():
    bert = _tiny_bert()
    ids = torch.tensor([[1, 5, 6, 2, 0], [1, 7, 2, 0, 0]])
    mask = (ids != 0).long()
    full = bert(ids, mask).last_hidden_state
    torch.testing.assert_close(ft.encoder_states(bert, ids, mask, 2, batch_size=1), full)
    states = ft.encoder_states(bert, ids, mask, 1)  # after the first layer: (2, 5, 8)
    top = ft.TopLayersClassifier(bert.layers[1:], 8, 3)
    with torch.no_grad():
        expected = top.head(B.mean_pool(full, mask))
        torch.testing.assert_close(top(states, mask), expected)
    with torch.no_grad():  # the classifier owns copies: changing them leaves the encoder alone
        top.layers[0].norm1.weight.add_(1.0)
    torch.testing.assert_close(bert(ids, mask).last_hidden_state, full)
    with pytest.raises(ValueError, match="upto"):
        ft.encoder_states(bert, ids, mask, 3)


def test_minilm_batch_passes_padding_and_cut_to_the_tokenizer():
    seen = {}

    def tokenizer(texts, **kw):
        seen.update(kw, texts=texts)
        ones = torch.ones(len(texts), 3, dtype=torch.long)
        return {"input_ids": ones, "attention_mask": ones}

    ids, mask = ft.minilm_batch(tokenizer, ["a b", "c"], max_len=7)
    assert ids.shape == mask.shape == (2, 3)
    assert seen["max_length"] == 7 and seen["padding"] and seen["truncation"]
    with pytest.raises(ValueError, match="empty"):
        ft.minilm_batch(tokenizer, [])


# --------------------------------------------------------------------------- training a head


def test_train_classifier_fits_separable_data_and_is_seeded():
    x, y = _blobs(n=90, gap=4.0)
    losses = {}
    for run in ("a", "b"):
        torch.manual_seed(0)
        head = torch.nn.Linear(4, 3)
        losses[run] = ft.train_classifier(head, x, y, epochs=30, lr=0.05, batch_size=16, seed=1)
    assert losses["a"] == losses["b"]
    assert losses["a"][-1] < 0.6 * losses["a"][0]
    pred = ft.predict(head, x, batch_size=7)
    assert pred.shape == (90,) and pred.dtype == torch.long
    assert (pred == y).double().mean() > 0.8


def test_train_classifier_takes_a_tuple_of_inputs():
    bert = _tiny_bert()
    ids = torch.randint(1, 20, (6, 5), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    states = ft.encoder_states(bert, ids, mask, 1)
    top = ft.TopLayersClassifier(bert.layers[1:], 8, 2)
    losses = ft.train_classifier(top, (states, mask), torch.tensor([0, 1] * 3), epochs=2)
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert ft.predict(top, (states, mask)).shape == (6,)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (
            lambda h: ft.train_classifier(h, torch.zeros(3, 4), torch.tensor([0, 1])),
            ValueError,
            r"must be \(3,\)",
        ),
        (
            lambda h: ft.train_classifier(h, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)),
            ValueError,
            "non-empty",
        ),
        (
            lambda h: ft.train_classifier(h, torch.zeros(2, 4), torch.tensor([0.0, 1.0])),
            TypeError,
            "integer",
        ),
        (
            lambda h: ft.train_classifier(h, torch.zeros(2, 4), torch.tensor([0, 1]), epochs=0),
            ValueError,
            "epochs",
        ),
        (lambda h: ft.predict(h, (torch.zeros(2, 4), torch.zeros(3, 4))), ValueError, "agree"),
        (lambda h: ft.predict(h, [torch.zeros(2, 4)]), TypeError, "tuple of tensors"),
    ],
)
def test_train_and_predict_bad_input(call, exc, words):
    with pytest.raises(exc, match=words):
        call(torch.nn.Linear(4, 3))


# --------------------------------------------------------------------------- notebook 10's exercise


def test_exercise_last_token_pool_wrong_answers_are_named():
    from course_lib.exercises import nb10

    def right(hidden, mask):
        lengths = mask.sum(dim=1)
        rows = torch.arange(hidden.shape[0])
        return hidden[rows, lengths - 1]

    def last_column(hidden, mask):
        return hidden[:, -1]

    def mean(hidden, mask):
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(dim=1) / m.sum(dim=1)

    def first(hidden, mask):
        return hidden[:, 0, :]

    ok, col, avg, fst = (
        nb10.last_token_pool(fn, quiet=True).message for fn in (right, last_column, mean, first)
    )
    assert ok == "right: all 3 cases pass. Well done!"
    assert "hint: this looks like the last column, padding included" in col
    assert "hint: this looks like the mean over the real positions" in avg
    assert "hint: this looks like the first position" in fst


def test_choose_l2_scores_leave_groups_out_folds(monkeypatch):
    x, y = _blobs(n=60, gap=3.0)
    groups = [f"play{i % 6}" for i in range(60)]
    best, scores = ft.choose_l2(x, y, groups, 3, grid=(0.1, 100.0), folds=3)
    assert set(scores) == {0.1, 100.0} and scores[best] == max(scores.values())
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    fitted_rows = []
    real_fit = ft.fit_logistic

    def spy(xf, yf, c, l2=1.0, max_iter=500):
        fitted_rows.append({tuple(r.tolist()) for r in xf})
        return real_fit(xf, yf, c, l2=l2, max_iter=max_iter)

    monkeypatch.setattr(ft, "fit_logistic", spy)
    ft.choose_l2(x, y, groups, 3, grid=(1.0,), folds=3)
    for k, rows in enumerate(fitted_rows):  # fold k leaves out plays k and k + 3, all of them
        held = {tuple(x[i].tolist()) for i in range(60) if int(groups[i][4:]) % 3 == k}
        assert rows and not rows & held and len(rows) == 40
    with pytest.raises(ValueError, match="folds must be"):
        ft.choose_l2(x, y, groups, 3, folds=7)
    with pytest.raises(ValueError, match="one group per row"):
        ft.choose_l2(x, y, groups[:5], 3)


def test_sentiment_set_is_balanced_and_split_by_topic():
    sets = ft.load_sentiment_set()
    train, test = sets["train"], sets["test"]
    assert len(train) + len(test) == 300 and len(test) == 75
    assert not set(train.topics) & set(test.topics)
    for split in (train, test):
        counts = torch.bincount(split.labels, minlength=3).tolist()
        assert counts[0] == counts[1] == counts[2]  # balanced in every split
    assert len(set(train.texts + test.texts)) == 300
    with pytest.raises(ValueError, match="test_every"):
        ft.load_sentiment_set(test_every=0)


def test_mean_pool_equals_bert_mean_pool():
    gen = torch.Generator().manual_seed(5)
    hidden = torch.randn(3, 7, 5, generator=gen)  # (B, T, D), odd sizes
    mask = torch.tensor([[1] * 7, [1] * 3 + [0] * 4, [1] + [0] * 6])
    torch.testing.assert_close(ft.pool(hidden, mask, "mean"), B.mean_pool(hidden, mask))
