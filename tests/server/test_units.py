"""Unit tests of the server's pure parts: request schemas, error shapes, token buckets, keys, settings."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from model.request_handle import TokenEvent
from model.tokenizer import Tokenizer
from server.app import create_app
from server.auth import ConfigError, Identity, KeyStore
from server.errors import param_from_loc
from server.keys_reload import identities_from_redis_hash
from server.loading import GENERATION_CONFIG_CHECKS
from server.outputs import ChoiceState, TokenTexts
from server.protocol import (
    CHECKPOINT_SAMPLING_KEYS,
    SAMPLING_DEFAULTS,
    ChatCompletionRequest,
    CompletionRequest,
)
from server.ratelimit import RateLimitExceeded, format_duration
from server.ratelimit_local import LocalRateLimiter, TokenBucket
from server.settings import Settings, build_parser, settings_from_args

# ------------------------------------------------------------------------------------------ protocol

BASE = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def errors_of(model: type, body: dict) -> list[tuple[str, tuple]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(body)
    return [(e["type"], e["loc"]) for e in info.value.errors()]


@pytest.mark.parametrize(
    "field, value",
    [
        ("functions", [{"name": "f"}]),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("prediction", {"type": "content", "content": "x"}),
        ("web_search_options", {}),
    ],
)
def test_unserved_features_are_refused_naming_the_parameter(field, value):
    assert errors_of(ChatCompletionRequest, {**BASE, field: value}) == [("unsupported_parameter", (field,))]


@pytest.mark.parametrize(
    "body, loc",
    [
        ({**BASE, "modalities": ["text", "audio"]}, ("modalities",)),
        (
            {
                **BASE,
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            },
            ("messages", 0, "content"),
        ),
        (
            {**BASE, "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            ("messages", 0, "content"),
        ),
        (
            {**BASE, "messages": [{"role": "function", "content": "x", "name": "f"}]},
            ("messages", 0, "role"),
        ),
    ],
)
def test_unserved_values_are_refused(body, loc):
    kinds = errors_of(ChatCompletionRequest, body)
    assert ("unsupported_value", loc) in kinds


def test_harmless_sdk_fields_are_accepted():
    req = ChatCompletionRequest.model_validate(
        {
            **BASE,
            "store": False,
            "metadata": {"a": "b"},
            "user": "u",
            "service_tier": "auto",
            "parallel_tool_calls": True,
            "tool_choice": "none",
            "tools": [],
            "modalities": ["text"],
            "response_format": {"type": "text"},
            "prompt_cache_key": "k",
            "safety_identifier": "s",
            "stream": True,
            "stream_options": {"include_usage": True, "include_obfuscation": False},
            "messages": [
                {"role": "developer", "content": "be brief", "name": "ops"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            ],
        }
    )
    assert req.messages[1].text() == "ab"
    assert req.include_usage()


def test_unknown_parameter_and_bad_values():
    assert errors_of(ChatCompletionRequest, {**BASE, "frobnicate": 1}) == [
        ("extra_forbidden", ("frobnicate",))
    ]
    assert errors_of(ChatCompletionRequest, {**BASE, "temperature": float("nan")})[0][1] == ("temperature",)
    assert errors_of(ChatCompletionRequest, {**BASE, "top_p": 1.5})[0][1] == ("top_p",)
    assert errors_of(ChatCompletionRequest, {**BASE, "max_tokens": 0})[0][1] == ("max_tokens",)
    assert errors_of(ChatCompletionRequest, {**BASE, "n": 0})[0][1] == ("n",)
    assert errors_of(ChatCompletionRequest, {**BASE, "stop": ["a", "b", "c", "d", "e"]})[0][1] == ("stop",)
    assert errors_of(ChatCompletionRequest, {**BASE, "logit_bias": {"x": 1}})[0][1] == ("logit_bias",)
    assert errors_of(ChatCompletionRequest, {**BASE, "logit_bias": {"5": 101}})[0][1] == ("logit_bias",)
    assert errors_of(ChatCompletionRequest, {"model": "m", "messages": []})[0][1] == ("messages",)
    assert errors_of(ChatCompletionRequest, {"model": "m", "messages": [{"role": "user"}]}) == [
        ("missing", ("messages", 0, "content"))
    ]
    assert errors_of(
        ChatCompletionRequest, {"model": "m", "messages": [{"role": "robot", "content": "x"}]}
    ) == [("invalid_role", ("messages", 0, "role"))]


def test_completion_prompt_forms():
    def prompts(p):
        return CompletionRequest.model_validate({"model": "m", "prompt": p}).prompts()

    assert prompts("a") == ["a"]
    assert prompts(["a", "b"]) == ["a", "b"]
    assert prompts([1, 2, 3]) == [[1, 2, 3]]
    assert prompts([[1], [2, 3]]) == [[1], [2, 3]]
    assert errors_of(CompletionRequest, {"model": "m", "prompt": []})[0][1] == ("prompt",)
    assert errors_of(CompletionRequest, {"model": "m", "prompt": "a", "suffix": "b"}) == [
        ("unsupported_parameter", ("suffix",))
    ]


def test_requests_convert_to_sampling_from_one_defaults_table():
    chat = ChatCompletionRequest.model_validate(BASE)
    params = chat.to_sampling_params(50, {})
    assert {key: getattr(params, key) for key in SAMPLING_DEFAULTS} == SAMPLING_DEFAULTS
    assert (params.max_tokens, params.logprobs, params.logit_bias, params.seed) == (50, None, None, None)
    # The checkpoint's generation_config.json fills what the request leaves out, for its own keys only.
    checkpoint = {"temperature": 0.6, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1}
    p = chat.to_sampling_params(50, {**checkpoint, "presence_penalty": 1.5})
    assert (p.temperature, p.top_p, p.top_k, p.min_p, p.repetition_penalty) == (0.6, 0.9, 40, 0.05, 1.1)
    assert p.presence_penalty == 0.0
    own = ChatCompletionRequest.model_validate(
        {
            **BASE,
            **{"temperature": 1.3, "top_k": -1, "logprobs": True, "top_logprobs": 3, "logit_bias": {"7": 2}},
            **{"seed": 5, "min_tokens": 2, "ignore_eos": True, "presence_penalty": None},
        }
    )
    p = own.to_sampling_params(50, checkpoint)
    assert (p.temperature, p.top_k, p.top_p, p.logprobs, p.logit_bias) == (1.3, 0, 0.9, 3, {7: 2.0})
    assert (p.seed, p.min_tokens, p.ignore_eos, p.presence_penalty) == (5, 2, True, 0.0)
    # Greedy: the checkpoint says do_sample false, or the request's top_p 0 or a vanishing temperature.
    assert chat.to_sampling_params(50, {"do_sample": False, "temperature": 0.6}).temperature == 0.0
    p = ChatCompletionRequest.model_validate({**BASE, "top_p": 0.0}).to_sampling_params(50, checkpoint)
    assert (p.temperature, p.top_p) == (0.0, 1.0)
    assert (
        ChatCompletionRequest.model_validate({**BASE, "temperature": 1e-9})
        .to_sampling_params(9, {})
        .temperature
        == 0
    )
    # Text completions count their logprobs; without logprobs, chat reports none.
    completion = CompletionRequest.model_validate({"model": "m", "prompt": "a", "logprobs": 2})
    assert completion.to_sampling_params(16, {}).logprobs == 2
    assert (
        ChatCompletionRequest.model_validate({**BASE, "logprobs": True}).to_sampling_params(9, {}).logprobs
        == 0
    )


def test_every_checkpoint_sampling_default_is_checked_when_loading():
    # A generation_config.json value becomes every request's default: one the loader does not check would
    # fail each request that leaves the parameter out, instead of failing the start-up once.
    assert set(GENERATION_CONFIG_CHECKS) == CHECKPOINT_SAMPLING_KEYS <= set(SAMPLING_DEFAULTS)


def test_param_path_from_validation_location():
    assert param_from_loc(("body", "messages", 0, "content")) == "messages[0].content"
    assert (
        param_from_loc(("body", "messages", 1, "content", "list[TextContentPart]", 2, "text"))
        == "messages[1].content[2].text"
    )
    assert param_from_loc(("body", "stream_options", "include_usage")) == "stream_options.include_usage"
    assert param_from_loc(("body",)) is None


# ------------------------------------------------------------------------------------------ rate limits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def headers(limiter: LocalRateLimiter, identity: Identity) -> dict[str, str]:
    return asyncio.run(limiter.headers(identity))


def test_token_bucket_refills_continuously_up_to_capacity():
    bucket = TokenBucket(60, now=0.0)  # 60 per minute = 1 per second
    assert bucket.wait_time(60, 0.0) == 0
    bucket.take(60, 0.0)
    assert bucket.remaining(0.0) == 0
    assert bucket.wait_time(1, 0.0) == pytest.approx(1.0)
    assert bucket.wait_time(3, 0.5) == pytest.approx(2.5)
    assert bucket.remaining(10.0) == 10
    assert bucket.reset_seconds(10.0) == pytest.approx(50.0)
    assert bucket.remaining(1000.0) == 60  # never above capacity
    assert math.isinf(bucket.wait_time(61, 1000.0))


def test_limiter_reserves_refunds_and_refuses_without_taking():
    clock = Clock()
    limiter = LocalRateLimiter(default_rpm=2, default_tpm=100, clock=clock)
    keys = KeyStore.from_settings(Settings(api_keys="k1"))
    who = keys.identities[0]
    first = limiter.reserve_now(who, 80)
    assert headers(limiter, who)["x-ratelimit-remaining-tokens"] == "20"
    first.settle(30)  # used 30 of 80: 50 come back
    first.settle(0)  # settling twice gives nothing more
    assert headers(limiter, who)["x-ratelimit-remaining-tokens"] == "70"
    with pytest.raises(RateLimitExceeded) as too_many_tokens:
        limiter.reserve_now(who, 90)
    assert too_many_tokens.value.limit == "tokens"
    assert too_many_tokens.value.retry_after == pytest.approx(20 / (100 / 60))
    assert headers(limiter, who)["x-ratelimit-remaining-requests"] == "1"  # the refusal took nothing
    limiter.reserve_now(who, 10)
    with pytest.raises(RateLimitExceeded) as too_many_requests:
        limiter.reserve_now(who, 1)
    assert too_many_requests.value.limit == "requests"
    assert too_many_requests.value.retry_after == pytest.approx(30.0)
    clock.now += 30
    limiter.reserve_now(who, 1)
    clock.now += 60
    with pytest.raises(RateLimitExceeded) as never:  # more than the bucket holds: no wait is enough
        limiter.reserve_now(who, 101)
    assert math.isinf(never.value.retry_after)


def test_limits_zero_means_unlimited_and_per_key_overrides(tmp_path: Path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [{"key": "a", "name": "alice", "rpm": 1}, {"key": "b"}]}))
    keys = KeyStore.from_settings(Settings(api_keys_file=str(path)))
    alice, other = keys.identities
    limiter = LocalRateLimiter(default_rpm=0, default_tpm=0, clock=Clock())
    for _ in range(100):
        limiter.reserve_now(other, 10**6)
    assert headers(limiter, other) == {}
    limiter.reserve_now(alice, 10**6)
    assert set(headers(limiter, alice)) == {
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    }
    with pytest.raises(RateLimitExceeded):
        limiter.reserve_now(alice, 1)


def test_reset_duration_format():
    assert format_duration(0.02) == "20ms"
    assert format_duration(1.5) == "1.5s"
    assert format_duration(360) == "6m0s"


# ------------------------------------------------------------------------------------------ keys


@pytest.mark.parametrize(
    "setting",
    [
        {"client_limit_public": "lots"},
        {"client_limit_auth_failures": "5/fortnight"},
        {"redis_url": "http://u:secret@h/0"},
    ],
)
def test_bad_scale_out_settings_are_refused_at_start_naming_the_setting(setting: dict[str, str]):
    with pytest.raises(ConfigError) as refused:
        create_app(Settings(api_keys="k", **setting))
    assert f"TINYLLM_{next(iter(setting)).upper()}" in str(refused.value)
    assert "secret" not in str(refused.value)


def test_keys_from_redis_are_hashes_and_malformed_entries_are_skipped():
    digest = hashlib.sha256(b"sk-from-redis").hexdigest()
    entries = {
        digest: '{"name": "erin", "rpm": 5}',
        "zz": '{"name": "not-hex"}',
        "ab" * 32: "not json",
        "cd" * 16: '{"name": "too-short"}',
        "ef" * 32: '{"rpm": 1}',  # no name
    }
    identities = identities_from_redis_hash(entries)
    assert [(i.name, i.rpm, i.digest.hex()) for i in identities] == [("erin", 5, digest)]
    store = KeyStore([], disabled=False)
    store.replace(identities)
    assert store.authenticate("Bearer sk-from-redis").name == "erin"
    assert store.authenticate("Bearer " + digest) is None  # the hash itself is not a key


def test_keys_are_matched_and_named_without_revealing_them(tmp_path: Path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [{"key": "sk-file", "name": "ci"}]}))
    keys = KeyStore.from_settings(Settings(api_keys=" sk-one , sk-two ", api_keys_file=str(path)))
    assert keys.authenticate("Bearer sk-two") is keys.identities[1]
    assert keys.authenticate("bearer sk-file").name == "ci"
    for bad in (None, "", "Bearer", "Bearer sk-three", "Basic sk-one", "sk-one", "Bearer sk-one2"):
        assert keys.authenticate(bad) is None
    for identity in keys.identities:
        assert "sk-" not in identity.name
    assert "sk-one" not in repr(Settings(api_keys="sk-one"))


def test_no_key_refuses_to_start_unless_auth_disabled(tmp_path: Path):
    with pytest.raises(ConfigError, match="TINYLLM_API_KEYS"):
        KeyStore.from_settings(Settings(api_keys=""))
    assert KeyStore.from_settings(Settings(auth_disabled=True)).authenticate(None).name == "anonymous"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"keys": [{"name": "x"}]}))
    with pytest.raises(ConfigError, match="bad.json"):
        KeyStore.from_settings(Settings(api_keys_file=str(bad)))
    with pytest.raises(ConfigError, match="missing.json"):
        KeyStore.from_settings(Settings(api_keys_file=str(tmp_path / "missing.json")))


# ------------------------------------------------------------------------------------------ settings


def test_settings_from_environment_and_flags(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TINYLLM_MAX_BATCH", "4")
    monkeypatch.setenv("TINYLLM_QUANTIZE", "none")
    monkeypatch.setenv("TINYLLM_LOG_PROMPTS", "true")
    s = settings_from_args([])
    assert (s.max_batch, s.quantize, s.log_prompts, s.port) == (4, "none", True, 8000)
    s = settings_from_args(["--max-batch", "2", "--no-log-prompts", "--port", "9000", "--api-keys", "a,b"])
    assert (s.max_batch, s.log_prompts, s.port, s.api_key_list()) == (2, False, 9000, ["a", "b"])
    with pytest.raises(SystemExit):
        settings_from_args(["--quantize", "int4"])
    with pytest.raises(ValidationError):
        settings_from_args(["--max-batch", "0"])


def test_every_setting_has_a_flag():
    flags = {a.dest for a in build_parser()._actions}
    assert set(Settings.model_fields) <= flags


# ------------------------------------------------------------------------------------------ outputs


def test_token_texts_show_partial_characters_as_bytes(server_tokenizer: Tokenizer):
    texts = TokenTexts(server_tokenizer)
    byte_id = server_tokenizer.token_id("<0xE4>")
    assert texts.get(byte_id) == ("bytes:\\xe4", [0xE4])
    token, raw = texts.get(server_tokenizer.encode("hello")[0])
    assert bytes(raw).decode() == token and "\ufffd" not in token


def test_choice_state_holds_back_stop_strings_across_tokens(server_tokenizer: Tokenizer):
    ids = server_tokenizer.encode("the quick brown fox jumps")
    choice = ChoiceState(0, server_tokenizer, ["brown f"])
    out = "".join(choice.on_event(TokenEvent(0, t)) for t in ids)
    assert out == "the quick " and choice.finish_reason == "stop"
    assert choice.on_event(TokenEvent(0, None, finish_reason="cancelled")) == ""
    assert choice.finish_reason == "stop" and choice.engine_finished

    plain = ChoiceState(0, server_tokenizer, ["zzz"])
    text = "".join(plain.on_event(TokenEvent(0, t)) for t in ids)
    text += plain.on_event(TokenEvent(0, None, finish_reason="length"))
    assert text == "the quick brown fox jumps" and plain.finish_reason == "length"
    assert plain.num_tokens == len(ids)
