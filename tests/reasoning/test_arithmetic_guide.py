"""The calculator guide (reasoning/arithmetic_guide.py): what it completes, that it agrees with every chain the
training generator writes, and that it drives the real sampler token by token with real tokenizers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from model.sampling import SamplingParams, SequenceSamplingState, sample_batch
from model.tokenizer_loading import load_tokenizer
from reasoning.arithmetic_guide import ArithmeticGuide, GuideVocabulary, question_expression, value_to_write
from reasoning.chain_format import GIVEN, REWRITE_RE, answer, given, rewrite
from server.settings import DEFAULT_MODEL_DIR
from training import reasoning_data as rd


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("先算括号里的加法：57+88=", "145"),
        ("so 48+154=", "202"),
        ("所以12*(3+4)=", "84"),
        ("2*7+2=", "16"),  # a column with its carry: precedence as written
        ("so 8/14=", "4/7"),  # a reduction: the fraction in lowest terms
        ("3-7=", "-4"),
        ("x=12/3=", "4"),  # the expression after the variable's "=" is complete
        ("3x+5=", None),  # an equation's side, not a sum
        ("so 9n=", None),
        ("so x=", None),
        ("7=", None),  # no operator: nothing to compute
        ("(3+4=", None),  # not an expression the calculator accepts
        ("5/0=", None),  # no value
        ("3+4", None),  # no "=" yet
    ],
)
def test_the_value_it_writes_after_an_expression(text: str, value: str | None) -> None:
    assert value_to_write(text) == value


def test_it_agrees_with_every_chain_the_generator_writes() -> None:
    """The guide never changes a correct chain: wherever the training format writes ``expression=``, the
    guide's value is the one written there, and the number ends where the value ends."""
    completed = 0
    for split in ("train", "test"):
        for record in rd.generate(split, 400, seed=3):
            text = record["cot"] + "\n" + record["final"]
            for end in (m.end() for m in re.finditer("=", text)):
                value = value_to_write(text[:end])
                if value is not None:
                    completed += 1
                    assert re.match(re.escape(value) + r"(?![\d/])", text[end:]), text[end - 30 : end + 10]
    assert completed > 2000


@pytest.mark.parametrize(
    ("question", "expression"),
    [
        ("计算：12×(3+4)−10", "12*(3+4)-10"),
        ("Work out 41 x 7 - 13 x 13.", "41*7-13*13"),  # x between spaced operands is a times sign
        ("Give me the number 46 * (15 + 19) - 9 comes to.", "46*(15+19)-9"),
        ("解方程：3x+5=20", None),  # a variable: an equation
        ("2024年，小明算了3+4，结果是几？", None),  # a number outside the expression
        ("What is 7 times 8?", None),  # in words: the model reads it
        ("Tom has 5 apples.", None),
    ],
)
def test_the_expression_a_chain_copies_from_the_question(question: str, expression: str | None) -> None:
    assert question_expression(question) == expression


def test_it_copies_every_generator_question_as_the_generators_chain_does() -> None:
    copied = 0
    for record in rd.generate("train", 1500, seed=4, kinds=("expression", "algebra")):
        expression = question_expression(record["user"])
        cot = record["cot"]
        if expression is not None:
            marker = next(m for m in GIVEN.values() if cot.startswith(m))
            assert (
                cot[len(marker) :].lstrip().startswith(expression + ("。" if record["lang"] == "zh" else "."))
            )
            copied += 1
        else:  # an equation, or a question in words: the model writes its own copy
            assert record["kind"] == "algebra" or not any(c in record["user"] for c in "+*/×÷")
    assert copied > 300


@pytest.fixture(scope="module", params=["sentencepiece", "tokenizer.json"])
def tokenizer(request: pytest.FixtureRequest, hf_checkpoint: Path):
    return load_tokenizer(DEFAULT_MODEL_DIR if request.param == "sentencepiece" else hf_checkpoint)


def _allowed(guide: ArithmeticGuide, vocab_size: int) -> torch.Tensor:
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    guide.fill_mask(mask)
    return mask


def test_after_an_expression_only_its_value_may_follow_then_no_digit(tokenizer) -> None:
    vocab = GuideVocabulary.of(tokenizer)
    guide = ArithmeticGuide(vocab)
    for token in tokenizer.encode("先算括号里的加法：57+88="):
        assert _allowed(guide, tokenizer.vocab_size).all()  # before "=": every token
        guide.accept(token)
    written = b""
    while not written.endswith(b"145"):
        allowed = _allowed(guide, tokenizer.vocab_size).nonzero().flatten().tolist()
        pieces = {tokenizer.token_bytes(i) for i in allowed}
        for piece in pieces:  # the value's next characters, or all of it and no more digits
            text = written + piece
            assert b"145".startswith(text) or (text.startswith(b"145") and not text[3:4].isdigit()), text
        token = min(allowed, key=lambda i: (len(tokenizer.token_bytes(i)), i))
        written += tokenizer.token_bytes(token)
        guide.accept(token)
    assert written == b"145" and guide.completed == 1
    after = _allowed(guide, tokenizer.vocab_size)
    assert not after[vocab.digit_start].any()  # "145" cannot become "1450"
    assert after[tokenizer.encode("，")[-1]] and after[tokenizer.stop_token_ids[0]]
    guide.accept(tokenizer.encode("，")[-1])
    assert _allowed(guide, tokenizer.vocab_size).all()


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_the_sampler_writes_the_calculators_digits_over_the_models(tokenizer, temperature: float) -> None:
    """A 'model' that always prefers 9 writes 57+88=145 under the guide, then its second choice (not a
    digit), greedy or sampled; each of a request's sequences (``fork``) keeps its own state."""
    prefix = tokenizer.encode("57+88=")
    (nine,) = [i for i in tokenizer.encode("=9") if tokenizer.token_bytes(i) == b"9"]
    comma = tokenizer.encode("，")[-1]
    guide = ArithmeticGuide(GuideVocabulary.of(tokenizer))
    for token in prefix:
        guide.accept(token)
    for index in range(2):
        row = SequenceSamplingState.create(
            SamplingParams(temperature=temperature, seed=1, constraint=guide.fork()), prefix, index
        )
        logits = torch.zeros(1, tokenizer.vocab_size)
        logits[:, nine] = 30.0
        logits[:, comma] = 20.0  # the model's second choice
        out = []
        while comma not in out and len(out) < 6:
            out += sample_batch(logits.clone(), [row]).tolist()
        assert tokenizer.decode(out) == "145，"


def _write(guide: ArithmeticGuide, tokenizer, text: str) -> list[str]:
    """Feed ``text``'s tokens to the guide as a model writing it would; return the pieces it forbade."""
    forbidden = []
    for token in tokenizer.encode(text):
        if not _allowed(guide, tokenizer.vocab_size)[token]:
            forbidden.append(tokenizer.decode([token]))
        guide.accept(token)
    return forbidden


def test_after_the_copy_marker_only_the_questions_expression_may_follow(tokenizer) -> None:
    guide = ArithmeticGuide(GuideVocabulary.of(tokenizer), "Work out 41 x (7 + 13) - 2.")
    assert _write(guide, tokenizer, GIVEN["en"]) == []
    remaining = b" 41*(7+13)-2"
    for token in tokenizer.encode(GIVEN["en"] + " 41*(7+13)-2")[len(tokenizer.encode(GIVEN["en"])) :]:
        allowed = _allowed(guide, tokenizer.vocab_size)
        assert allowed[token]  # the tokenizer's own pieces...
        for other in allowed.nonzero().flatten().tolist():  # ...and only pieces of what is left to write
            piece = tokenizer.token_bytes(other)
            assert remaining.startswith(piece) or (
                piece.startswith(remaining) and piece[len(remaining) :][:1] in b".,"
            ), piece
        remaining = remaining[len(tokenizer.token_bytes(token)) :]
        guide.accept(token)
    assert remaining == b""
    assert _write(guide, tokenizer, ". Then 7+13") == []  # the copy is made once: a later one is the model's
    guide.accept(tokenizer.encode(GIVEN["en"])[-1])
    assert _allowed(guide, tokenizer.vocab_size).all()


def test_a_copy_ending_in_a_bracket_may_end_with_the_piece_that_merges_it_with_a_full_stop(
    smollm2_dir,
) -> None:
    """Both tokenizers write "(18-11)." with one ")." piece; forcing a lone ")" left SmolLM2's chains
    stopping right after the copy. The last piece may merge with punctuation, never with more arithmetic."""
    for tokenizer in (load_tokenizer(DEFAULT_MODEL_DIR), load_tokenizer(smollm2_dir)):
        guide = ArithmeticGuide(GuideVocabulary.of(tokenizer), "Find (37 + 26) x (18 - 11).")
        (stop,) = [i for i in tokenizer.encode("(1).") if tokenizer.token_bytes(i) == b")."]
        _write(guide, tokenizer, GIVEN["en"] + " (37+26)*(18-11")
        last = _allowed(guide, tokenizer.vocab_size)
        assert last[stop] and last[tokenizer.encode("(1)")[-1]]
        pieces = [tokenizer.token_bytes(i) for i in last.nonzero().flatten().tolist()]
        assert all(p.startswith(b")") and not set(p[1:2]) & set(b"0123456789*/+-()") for p in pieces), pieces
        assert _write(guide, tokenizer, "). Work") == []


def test_it_writes_every_rewrite_of_the_generators_chains_and_allows_every_token_of_them(tokenizer) -> None:
    """Token by token through the guide, a generator chain is never forbidden a token, and every rewrite
    ("the expression is now 26*45-14") is one the calculator wrote."""
    vocab, rewrites, forced, steps = GuideVocabulary.of(tokenizer), 0, 0, 0
    for record in rd.generate("test", 120, seed=5, kinds=("expression",)):
        guide = ArithmeticGuide(vocab, record["user"])
        assert _write(guide, tokenizer, record["cot"]) == [], record["cot"]
        rewrites += len(REWRITE_RE.findall(record["cot"]))
        forced += guide.rewritten
        steps += guide.stepped
    assert forced == rewrites > 100
    assert steps == forced + 120  # every step held to the order of operations: one per rewrite, and the last


def test_no_chain_of_the_generator_is_forbidden_a_token(tokenizer) -> None:
    """Word problems, probability and equations too, in both languages: the guide leaves correct chains be."""
    vocab = GuideVocabulary.of(tokenizer)
    composed = rd.generate("train", 60, seed=6, kinds=("word",), story_share=1.0)  # training.reasoning_story
    for record in rd.generate("test", 160, seed=6, kinds=("word", "probability", "algebra")) + composed:
        guide = ArithmeticGuide(vocab, record["user"])
        assert _write(guide, tokenizer, record["cot"] + "\n" + record["final"]) == [], record["cot"]


def test_a_rewrite_follows_the_step_the_model_chose_and_only_a_step_the_expression_can_do(tokenizer) -> None:
    vocab = GuideVocabulary.of(tokenizer)
    en = rewrite("en", "")

    def forced_rest(question: str | None, chain: str) -> str:
        """What the guide writes after ``chain`` (ending with a rewrite phrase), or "" if it leaves it."""
        guide = ArithmeticGuide(vocab, question)
        _write(guide, tokenizer, chain.rstrip())
        written = b""
        while (allowed := _allowed(guide, tokenizer.vocab_size)).sum() < tokenizer.vocab_size // 2:
            # the shortest allowed piece: the text itself, not a piece merged with punctuation after it
            token = min(allowed.nonzero().flatten().tolist(), key=lambda i: len(tokenizer.token_bytes(i)))
            written += tokenizer.token_bytes(token)
            guide.accept(token)
        return written.decode().strip()

    copy = f"{given('en', '26*(27+18)-14')}. First, 27+18=45{en}"
    assert forced_rest("Give me 26 * (27 + 18) - 14.", copy) == "26*45-14"  # the bracket goes
    later = f"{copy}26*45-14. Then 26*45=1170{en}"
    assert forced_rest("Give me 26 * (27 + 18) - 14.", later) == "1170-14"
    # The model's own copy of a question in words is read, and its rewrites written from it.
    assert forced_rest("Double 18 and add 7.", f"{given('en', '18*2+7')}. First, 18*2=36{en}") == "36+7"
    # A step the expression cannot do next (precedence) or a false one: the model writes the rewrite.
    assert forced_rest("Work out 222 - 23 x 3.", f"{given('en', '222-23*3')}. First, 222-23=199{en}") == ""
    zh = f"{given('zh', '(44+28)*(16-13)')}。先算括号里的加法：44+28=72{rewrite('zh', '')}"
    assert forced_rest("（44+28）×（16−13）算出来是多少？", zh) == "72*(16-13)"


def test_the_next_step_is_one_the_expression_can_do_next(tokenizer) -> None:
    """After the copy (or a rewrite) the first number the model writes starts the next step: only the
    operations of two plain numbers may begin there, in the model's choice of order; narration stays free."""
    vocab = GuideVocabulary.of(tokenizer)

    def numbers_allowed(question: str, chain: str) -> set[bytes]:
        """The pieces holding a digit the guide allows right after ``chain`` (which it must allow)."""
        guide = ArithmeticGuide(vocab, question)
        assert _write(guide, tokenizer, chain) == []
        allowed = _allowed(guide, tokenizer.vocab_size)
        assert allowed[tokenizer.encode(" so")[-1]]  # narration
        pieces = (tokenizer.token_bytes(i) for i in allowed.nonzero().flatten().tolist())
        return {piece for piece in pieces if re.search(rb"\d", piece)}

    def only_starts(pieces: set[bytes], steps: tuple[bytes, ...]) -> bool:
        return all(
            any(
                s.startswith(p.lstrip()) or (p.lstrip().startswith(s) and not p.lstrip()[len(s) :].isdigit())
                for s in steps
            )
            for p in pieces
        )

    question = "Work out 222 - 23 x 3."
    copied = f"{given('en', '222-23*3')}. First, multiplication:"
    pieces = numbers_allowed(question, copied)
    assert pieces and only_starts(pieces, (b"23*3",))  # 222-23 first breaks the order of operations
    assert _write(ArithmeticGuide(vocab, question), tokenizer, copied + " 23*3: 3*3=9") == []
    assert _write(ArithmeticGuide(vocab, question), tokenizer, copied + " 222-23") != []
    # Two products ready: either may come first, never the difference between them.
    zh = f"{given('zh', '44*29-19*8')}。先算乘法："
    assert only_starts(numbers_allowed("44*29-19*8=?", zh), (b"44*29", b"19*8"))
    for step in ("44*29", "19*8"):
        assert _write(ArithmeticGuide(vocab, "44*29-19*8=?"), tokenizer, zh + step + "：") == [], step
    assert _write(ArithmeticGuide(vocab, "44*29-19*8=?"), tokenizer, zh + "29-19") != []
    # After a rewrite the step comes from what is left; a number in a chain with no expression is free.
    rewritten = f"{given('en', '26*(27+18)-14')}. First, 27+18=45{rewrite('en', '26*45-14')}. Then"
    assert only_starts(numbers_allowed("Give me 26 * (27 + 18) - 14.", rewritten), (b"26*45",))
    free = numbers_allowed("Tom has 12 apples and buys 7 more.", "12+7=19. " + answer("en", "").rstrip())
    assert not only_starts(free, (b"26*45",))


def _forced(guide: ArithmeticGuide, tokenizer) -> str:
    """What the guide forces from here: the shortest allowed piece while fewer than half the tokens are."""
    written = b""
    while (allowed := _allowed(guide, tokenizer.vocab_size)).sum() < tokenizer.vocab_size // 2:
        token = min(allowed.nonzero().flatten().tolist(), key=lambda i: len(tokenizer.token_bytes(i)))
        written += tokenizer.token_bytes(token)
        guide.accept(token)
    return written.decode()


def test_after_the_value_of_the_step_taken_the_rewrite_follows_when_something_is_left(tokenizer) -> None:
    """A model that skipped the rewrite lost the expression ("so 15*16=240", then "240*9" for 15*16+9):
    after the value of the step it took, the rewrite's phrase and what is left are written. Not after a
    column inside a worked step that happens to read the same ("11-3: 11-3=8, 1-1-0=0"), nor after the
    last step."""
    vocab = GuideVocabulary.of(tokenizer)
    guide = ArithmeticGuide(vocab, "Tell me the sum of 4, 3 and 5. (4+3+5)")
    _write(guide, tokenizer, f"{given('en', '4+3+5')}. Add: 4+3=")
    assert _forced(guide, tokenizer) == "7" + rewrite("en", "7+5")
    zh = f"{given('zh', '15*16+9')}。先算乘法：15*16：15*6=90，15*10=150，90+150=240，所以15*16="
    guide = ArithmeticGuide(vocab, "算一算：15×16+9")
    assert _write(guide, tokenizer, zh) == []
    assert _forced(guide, tokenizer) == "240" + rewrite("zh", "240+9")
    guide = ArithmeticGuide(vocab, "Work out (11 - 3) / 2.")
    _write(guide, tokenizer, f"{given('en', '(11-3)/2')}. First: 11-3: 11-3=")
    assert _forced(guide, tokenizer) == "8"  # a column of the worked step: the model goes on
    assert _write(guide, tokenizer, ", 1-1-0=0, so 11-3=") == []
    assert _forced(guide, tokenizer) == "8" + rewrite("en", "8/2")
    assert _write(guide, tokenizer, ". Finally, divide: 8/2=") == []
    assert _forced(guide, tokenizer) == "4"  # the last step: nothing is left to rewrite


def test_the_guide_leaves_the_end_of_a_sequence_to_ignore_eos_and_min_tokens(tokenizer) -> None:
    guide = ArithmeticGuide(GuideVocabulary.of(tokenizer))
    state = SequenceSamplingState.create(SamplingParams(ignore_eos=True, constraint=guide), [1])
    eos = tuple(tokenizer.stop_token_ids)
    assert set(eos) <= set(state.banned(eos))


def test_a_worked_operation_closes_with_its_own_header(tokenizer) -> None:
    """A model that worked 112*19 right closed it as "所以1122*19=", and the calculator gave that a value: at
    ", so" / "，所以" inside a worked operation the guide writes the innermost open header; a closing pops it,
    a sentence's end drops them all."""
    vocab = GuideVocabulary.of(tokenizer)
    zh = "最后算乘法：112*19：112*1=112，112*10=1120，112*9：2*9=18，1*9+1=10，1*9=9，所以"
    guide = ArithmeticGuide(vocab)
    assert _write(guide, tokenizer, zh) == []
    assert _forced(guide, tokenizer) == "112*9"  # the inner one first
    assert _write(guide, tokenizer, "=") == [] and _forced(guide, tokenizer) == "1008"
    assert _write(guide, tokenizer, "，1120+1008：0+8=8，2+0=2，1+1=2，1+0=1，所以") == []
    assert _forced(guide, tokenizer) == "1120+1008"
    assert _write(guide, tokenizer, "=") == [] and _forced(guide, tokenizer) == "2128"
    assert _write(guide, tokenizer, "，所以") == [] and _forced(guide, tokenizer) == "112*19"
    assert _write(guide, tokenizer, "=") == [] and _forced(guide, tokenizer) == "2128"
    assert _write(guide, tokenizer, "。" + answer("zh", "2128")) == []  # nothing open: the answer is free
    wrong = ArithmeticGuide(vocab)
    assert _write(wrong, tokenizer, zh + "112*9=1008，1120+1008=2128，所以1122*19=") != []
    en = ArithmeticGuide(vocab)
    assert _write(en, tokenizer, "Finally, multiply: 23*45: 23*4: 3*4=12, 2*4+1=9, so") == []
    assert _forced(en, tokenizer) == " 23*4"
    # A sentence's end leaves nothing open.
    ended = ArithmeticGuide(vocab)
    assert _write(ended, tokenizer, "First, multiply: 23*45: 23*4=92. Then, so") == []
    assert _forced(ended, tokenizer) == ""
