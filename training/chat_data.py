"""A small general-chat instruction set, in Chinese and English, so the model keeps talking like an
assistant after reasoning SFT: greetings, who it is, what it can do, thanks and goodbyes, word meanings
(WordNet glosses), poems and sayings (fortune databases), and copying tasks.

Answers are true by construction: identity text is fixed, word meanings come from WordNet, poems from
the fortune files, and copied text is the user's own. Output records use the ``{"messages": [...]}``
format, so they go through the same ingestion as anyone's JSONL.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.corpus import Gloss, Source, load_fortune_entries, load_glosses

SYSTEMS = {
    "zh": ["", "", "你是一个乐于助人的助手。", "你是 TinyLLM，一个小而友好的中文助手。", "请简洁地回答。"],
    "en": [
        "",
        "",
        "You are a helpful assistant.",
        "You are TinyLLM, a small and friendly assistant.",
        "Answer briefly.",
    ],
}
IDENTITY = {
    "zh": [
        "我是 TinyLLM，一个在普通 CPU 上从零训练出来的小型语言模型。我能用中文和英文简单聊天，也会一步一步地解算术题。",
        "我叫 TinyLLM。我是一个很小的语言模型，参数只有几百万个，擅长简单的算术推理和日常对话。",
        "你好，我是 TinyLLM，一个小型中英双语助手。我的知识有限，但我会尽力帮你，尤其是算术题。",
    ],
    "en": [
        "I am TinyLLM, a small language model trained from scratch on an ordinary CPU. I can chat a little "
        "in English and Chinese, and I solve arithmetic problems step by step.",
        "My name is TinyLLM. I'm a tiny language model with a few million parameters; I'm best at simple "
        "arithmetic reasoning and short conversations.",
        "Hi, I'm TinyLLM, a small bilingual assistant. My knowledge is limited, but I'm happy to help, "
        "especially with arithmetic.",
    ],
}
TURNS: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "zh": {
        "greet": (
            ["你好", "你好！", "您好", "嗨", "早上好", "晚上好", "哈喽", "你好呀"],
            [
                "你好！有什么可以帮你的吗？",
                "你好！我是 TinyLLM，很高兴和你聊天。",
                "嗨！今天想聊点什么？",
                "你好呀！需要我帮你算一道题吗？",
            ],
        ),
        "identity": (
            ["你是谁？", "介绍一下你自己。", "你叫什么名字？", "你是什么模型？", "请做个自我介绍"],
            IDENTITY["zh"],
        ),
        "ability": (
            ["你能做什么？", "你会做数学题吗？", "你有什么本领？", "你擅长什么？"],
            [
                "我能做简单的算术推理：加减乘除、括号、分数和简单的应用题，我会先写出步骤再给答案。也可以和你简单聊天。",
                "会一些！把算式或者应用题告诉我，我会一步一步地算。不过我是个很小的模型，复杂的问题可能会出错。",
            ],
        ),
        "thanks": (
            ["谢谢", "谢谢你！", "多谢", "太感谢了"],
            ["不客气！", "不用谢，很高兴能帮到你。", "不客气，还有问题随时问我。"],
        ),
        "bye": (
            ["再见", "拜拜", "我走了，再见！", "下次聊"],
            ["再见！祝你有美好的一天。", "拜拜，下次见！", "再见，随时欢迎回来。"],
        ),
    },
    "en": {
        "greet": (
            ["Hello", "Hi!", "Hey there", "Good morning", "Good evening", "Hi, how are you?", "hello"],
            [
                "Hello! How can I help you today?",
                "Hi! I'm TinyLLM. Nice to meet you.",
                "Hey! What would you like to talk about?",
                "Hello! Do you have a math problem for me?",
            ],
        ),
        "identity": (
            [
                "Who are you?",
                "Introduce yourself.",
                "What's your name?",
                "What are you?",
                "Tell me about yourself.",
            ],
            IDENTITY["en"],
        ),
        "ability": (
            ["What can you do?", "Can you do math?", "What are you good at?", "How can you help me?"],
            [
                "I can solve simple arithmetic: addition, subtraction, multiplication, division, brackets, "
                "fractions and short word problems. I write the steps first, then the answer. I can also chat.",
                "Some! Give me an expression or a word problem and I'll work through it step by step. I'm a "
                "very small model, so hard questions may trip me up.",
            ],
        ),
        "thanks": (
            ["Thanks", "Thank you!", "Thanks a lot", "Much appreciated"],
            ["You're welcome!", "Happy to help.", "Any time! Let me know if you have more questions."],
        ),
        "bye": (
            ["Bye", "Goodbye!", "See you later", "I have to go now, bye!"],
            ["Goodbye! Have a nice day.", "See you next time!", "Bye! Come back any time."],
        ),
    },
}
POS_ZH = {"n.": "名词", "v.": "动词", "adj.": "形容词", "adv.": "副词"}


def _messages(rng: random.Random, lang: str, user: str, assistant: str) -> dict[str, Any]:
    system = rng.choice(SYSTEMS[lang])
    msgs = [{"role": "system", "content": system}] if system else []
    return {
        "messages": msgs + [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
        "lang": lang,
    }


def _small_talk(rng: random.Random, lang: str) -> dict[str, Any]:
    kind = rng.choice(list(TURNS[lang]))
    users, answers = TURNS[lang][kind]
    return _messages(rng, lang, rng.choice(users), rng.choice(answers))


def _word_meaning(rng: random.Random, lang: str, g: Gloss) -> dict[str, Any]:
    w = rng.choice(g.words[:2])
    example = f' For example: "{g.examples[0]}".' if g.examples else ""
    if lang == "en":
        user = rng.choice(
            [
                f'What does "{w}" mean?',
                f"Define {w}.",
                f"What is the meaning of the word {w}?",
                f"Explain the word '{w}'.",
            ]
        )
        answer = f'"{w}" ({g.pos}) means: {g.definition}.{example}'
        others = [x for x in g.words if x != w]
        if others and rng.random() < 0.3:
            answer += f" Similar words: {', '.join(others[:3])}."
    else:
        user = rng.choice(
            [f"“{w}”是什么意思？", f"英文单词 {w} 是什么意思？", f"解释一下 {w} 这个词。", f"{w} 怎么解释？"]
        )
        answer = f"“{w}”是一个英文{POS_ZH.get(g.pos, '词')}，英文释义是：{g.definition}。"
        if g.examples:
            answer += f"例句：{g.examples[0]}"
    return _messages(rng, lang, user, answer)


def _synonym(rng: random.Random, g: Gloss) -> dict[str, Any]:
    w, other = rng.sample(g.words[:4], 2)
    if rng.random() < 0.5:
        return _messages(
            rng,
            "en",
            rng.choice([f"Give me a synonym of {w}.", f"What is another word for {w}?"]),
            f'Another word for "{w}" is "{other}".',
        )
    return _messages(rng, "zh", f"{w} 的英文近义词是什么？", f"“{w}”的一个近义词是“{other}”。")


def _recite(rng: random.Random, lang: str, entries: list[str]) -> dict[str, Any]:
    entry = rng.choice(entries).strip()
    if lang == "zh":
        poem = "\n" in entry and "作者" in entry
        user = rng.choice(
            ["背一首古诗给我听。", "来一首唐诗。", "念一首诗吧。"]
            if poem
            else ["说一句有道理的话。", "给我讲一段话。", "来一条今日格言。"]
        )
    else:
        user = rng.choice(
            ["Tell me a fortune.", "Say something wise.", "Give me a quote.", "Tell me a saying."]
        )
    return _messages(rng, lang, user, entry)


def _copy(rng: random.Random, lang: str, entries: list[str]) -> dict[str, Any]:
    line = rng.choice(
        [e for e in (rng.choice(entries) for _ in range(5)) if len(e) < 120] or ["你好，世界。"]
    )
    line = " ".join(line.split()) if lang == "en" else line.replace("\n", "")
    if lang == "zh":
        return _messages(
            rng, lang, rng.choice([f"请重复这句话：{line}", f"把下面的话原样写一遍：{line}"]), line
        )
    return _messages(
        rng, lang, rng.choice([f"Repeat after me: {line}", f"Please copy this sentence: {line}"]), line
    )


def generate_chat(
    n: int, seed: int = 0, max_glosses: int = 20000, sources: dict[str, Source] | None = None
) -> list[dict[str, Any]]:
    """``n`` chat examples, about half Chinese; sources that are not installed are simply not used."""
    rng = random.Random(seed)
    glosses = load_glosses(max_glosses, seed, sources)
    multi = [g for g in glosses if len(g.words) >= 2]
    entries = {
        "zh": [e for e in load_fortune_entries(True, sources) if 8 <= len(e) <= 400],
        "en": [e for e in load_fortune_entries(False, sources) if 8 <= len(e) <= 300],
    }
    makers: list[tuple[float, Callable[[], dict[str, Any]]]] = [
        (3.0, lambda: _small_talk(rng, rng.choice(["zh", "en"]))),
    ]
    if glosses:
        makers.append((3.0, lambda: _word_meaning(rng, rng.choice(["zh", "en"]), rng.choice(glosses))))
    if multi:
        makers.append((1.0, lambda: _synonym(rng, rng.choice(multi))))
    for lang in ("zh", "en"):
        if entries[lang]:
            makers.append((1.0, lambda lang=lang: _recite(rng, lang, entries[lang])))
            makers.append((1.0, lambda lang=lang: _copy(rng, lang, entries[lang])))
    weights = [w for w, _ in makers]
    return [rng.choices(makers, weights)[0][1]() for _ in range(n)]


def write_chat(path: str | Path, n: int, seed: int = 0) -> int:
    records = generate_chat(n, seed)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return len(records)
