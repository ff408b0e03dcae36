"""course_lib.search and course_lib.search_data: the plays' document store, its questions, the
two retrievers, the Search tool's text, the reader's tokenizer and the shipped reader."""

import json
import re

import pytest
import torch

from course_lib import data, search_data
from course_lib import search as S
from course_lib.search_data import Document, Question, ReaderTokenizer
from course_lib.tools import call_text


@pytest.fixture(scope="module")
def tables():
    return search_data.build_tables()


@pytest.fixture(scope="module")
def reader():
    return S.load_reader()


def test_rebuilding_the_tables_gives_the_shipped_bytes(tables):
    docs, questions = tables
    root = data.data_dir()
    assert (root / search_data.DOCUMENTS_FILE).read_bytes() == docs.encode("utf-8")
    assert (root / search_data.QUESTIONS_FILE).read_bytes() == questions.encode("utf-8")
    assert len(S.load_documents()) == len(docs.splitlines()) - 1  # checked against the manifest


def test_the_plays_are_cut_back_into_whole_texts():
    texts = search_data.play_texts()
    assert len(texts) == 37
    joined = len(data.load_corpus("train", "full")) + len(data.load_corpus("val", "full"))
    parts = sum(len(t) for play, t in texts.items() if play != "coriolanus")
    assert parts == joined - 2 * 35  # 36 plays, joined by one newline in each split
    assert texts["coriolanus"] == data.load_corpus("test", "full")
    assert texts["macbeth"].startswith("MACBETH\n\nby William Shakespeare")
    assert texts["hamlet"].rstrip().endswith("ordnance is shot off.]")


def test_facts_read_from_a_small_play():
    text = (
        "A PLAY\n\nby William Shakespeare\n\nSCENE: Partly in Ivo,\nand partly at sea.\n\n"
        "ACT I.\n\nSCENE 1. Ivo.  A room.\n\n"
        + "ANNA.\nYes.\n\nBORIS.\nNo.\n\nANNA.\nSo.\n\n" * 200
        + "SCENE II. The same.\n\nBORIS.\nEnd.\n"
    )
    facts = search_data.play_facts(text)
    assert facts == {
        "speeches": "Anna",
        "speeches_n": "400",
        "speakers": "2",
        "scenes": "2",
        "opening": "Ivo",
        "setting": "Partly in Ivo, and partly at sea",
    }
    abbreviated = text.replace("ANNA.", "Ann.")  # "Ann." headings: no speaker facts
    assert "speeches" not in search_data.play_facts(abbreviated)


def test_questions_are_well_formed_and_answered_by_their_gold_document():
    docs = {d.doc_id: d for d in S.load_documents()}
    questions = S.load_questions()
    test = S.load_questions("test")
    assert len(test) >= 40 and len(questions) == len(test) + len(S.load_questions("dev"))
    assert len({q.qid for q in questions}) == len(questions)
    for q in questions:
        gold = docs[q.doc_id]
        assert gold.play == q.play and gold.kind == q.kind
        assert q.answer and q.answer in gold.text, q
        assert q.text.endswith("?") and q.text != gold.text
    assert {q.kind for q in test} == set(search_data.QUESTION_TEMPLATES)
    assert not {q.play for q in test} & set(search_data.DEV_PLAYS)
    genre = {q.play: q.answer for q in questions if q.kind == "genre"}
    assert genre["twelfth_night"] == "comedy" and "pericles" not in genre


class FakeEncoder:
    """Bag-of-letters vectors: enough to test the MiniLM retriever's plumbing offline."""

    def encode(self, texts, convert_to_tensor=True, normalize_embeddings=True):
        out = torch.zeros(len(texts), 26)
        for i, t in enumerate(texts):
            for c in re.sub("[^a-z]", "", t.lower()):
                out[i, ord(c) - 97] += 1
        return torch.nn.functional.normalize(out, dim=-1)


HAND_DOCS = [
    Document("a:scenes", "a", "scenes", "Most often, Ivo is played in 12 scenes."),
    Document("a:speeches", "a", "speeches", "In Ivo the character with the most speeches is Bo."),
    Document("b:speeches", "b", "speeches", "In Zed the character with the most speeches is Ann."),
]
# Its words overlap most with the wrong document ("most", "often", "in", "ivo": 4 against 3).
TRAP = Question("q", "a", "speeches", "test", "Who speaks most often in Ivo?", "Bo", "a:speeches")


def test_word_overlap_scores_shared_words_and_falls_into_the_trap():
    shared, jaccard = S.Retriever(HAND_DOCS, "shared"), S.Retriever(HAND_DOCS, "overlap")
    assert shared.scores([TRAP.text]).tolist() == [[4, 3, 2]]
    # |q & d| / |q | d|: the query has 6 words, the documents 8, 9 and 9
    assert jaccard.scores([TRAP.text]).tolist() == [[4 / 10, 3 / 12, 2 / 13]]
    for r in (shared, jaccard):
        assert S.hit_at(r, [TRAP], 1) == 0.0 and S.hit_at(r, [TRAP], 3) == 1.0
    tie = S.Retriever([HAND_DOCS[1], HAND_DOCS[1]], "overlap")
    assert tie.ranked(["Ivo"], 2) == [[0, 1]]  # ties go to the earlier document


def test_minilm_ranks_by_meaning_on_the_trap():
    r = S.Retriever(HAND_DOCS, "minilm")  # the real model, offline
    assert r.ranked([TRAP.text], 3) == [[1, 0, 2]]
    assert S.hit_at(r, [TRAP], 1) == 1.0
    fake = S.Retriever(HAND_DOCS, "minilm", encoder=FakeEncoder())
    assert fake.doc_vectors.shape == (3, 26)
    assert torch.allclose(fake.scores([HAND_DOCS[2].text])[0, 2], torch.tensor(1.0), atol=1e-6)
    with pytest.raises(ValueError, match="kind"):
        S.Retriever(HAND_DOCS, "bm25")


def test_the_shipped_hit_rates_are_what_the_retrievers_give(reader):
    _, _, results = reader
    docs, questions = S.load_documents(), S.load_questions("test")
    for name in S.RETRIEVERS:  # MiniLM: the real model, offline
        got = S.hit_at(S.Retriever(docs, name), questions, 1)
        assert got == pytest.approx(results["test"]["retrieval"][name]["hit@1"], abs=1e-9), name


def test_the_search_call_is_toolformers_linearisation():
    r = S.Retriever(HAND_DOCS, "overlap")
    text = S.search_call("Who has the most speeches in Zed?", r)
    assert text == call_text("Who has the most speeches in Zed?", HAND_DOCS[2].text, tool="Search")
    assert text == "[Search(Who has the most speeches in Zed?)→" + HAND_DOCS[2].text + "]"
    assert S.prompt("Q?", "D.") == "[Search(Q?)→D.] Q?" and S.prompt("Q?") == "Q?"


def test_tokenizer_round_trips_and_spells_names():
    tok = ReaderTokenizer()
    text = (
        "[Search(Who speaks most often in The Winter's Tale?)→In X the character is Sir Toby "
        "(152 speeches).] Where? A hall in the DUKE'S palace, LEONTES' Sea-coast"
    )
    assert tok.decode(tok.encode(text)) == text
    ids = tok.encode("Rousillon 358")
    assert [tok.pieces[i] for i in ids] == ["R", *(f"##{c}" for c in "ousillon"), "3", "##5", "##8"]
    assert [tok.pieces[i] for i in tok.encode("most speeches")] == ["most", "speeches"]
    with pytest.raises(ValueError, match="spell"):
        tok.encode("Ærø")
    for d in S.load_documents():
        assert tok.decode(tok.encode(d.text)) == d.text


def test_the_readers_first_training_losses_reproduce(reader):
    _, _, results = reader
    cfg = S.ReaderConfig(**results["config"])
    threads = torch.get_num_threads()
    torch.set_num_threads(results["threads"])
    try:
        _, _, losses = S.train_reader(cfg, stop_after=len(results["train_losses"]))
    finally:
        torch.set_num_threads(threads)
    assert losses == pytest.approx(results["train_losses"], rel=1e-4)


def test_the_reader_copies_an_answer_from_a_snippet_about_a_made_up_play(reader):
    model, tok, _ = reader
    question = "Who speaks most often in Quorvane?"
    doc = "In Quorvane the character with the most speeches is Belimar Tosk (91 speeches)."
    assert S.answer(model, tok, question, doc) == "Belimar Tosk"
    assert (
        S.answer(
            model,
            tok,
            "How many scenes are there in Quorvane?",
            "Quorvane is divided into 37 scenes.",
        )
        == "37"
    )


def test_the_shipped_results_hang_together(reader):
    _, _, results = reader
    em = results["test"]["exact_match"]
    for name in S.RETRIEVERS:
        assert em["gold"] >= em[name] > em["none"], name
    assert em["gold"] > em["majority baseline"]
    assert results["test"]["questions"] == len(S.load_questions("test"))
    assert results["train_seconds"] <= 180 and results["parameters"] == sum(
        p.numel() for p in reader[0].parameters()
    )
    for name in S.RETRIEVERS:
        hits = results["test"]["retrieval"][name]
        assert 0 <= hits["hit@1"] <= hits["hit@3"] <= 1
    stored = json.loads((S.shipped.models_dir() / "search" / "results.json").read_text())
    assert stored["train_losses"] == results["train_losses"]
