"""The masker hides a secret in every form a server may echo it in (as sent,
URL-encoded, JSON-escaped once or more), and any run of its first 8+
characters (a copy cut short), wherever it appears in the text."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamer.observability.masking import MASK, MIN_PREFIX, SecretMasker
from tests.helpers.secrets import leaks
from tests.helpers.secrets import secret_forms as forms

SPECIAL = '/+="\\ %&?éü€😀\n'
KEYS = st.text(alphabet=st.sampled_from("abcXYZ0189" + SPECIAL), min_size=MIN_PREFIX,
               max_size=48)
TEXT = st.text(alphabet=st.sampled_from("ab{}:, .x\"'"), max_size=20)


@settings(max_examples=300, deadline=None)
@given(key=KEYS, before=TEXT, after=TEXT, pick=st.integers(0, 1000))
@example(key="1234/abcdefghijklmnop", before='{"error":"', after='"}', pick=6)
@example(key='k"ey\\with/slash+plus=', before="x", after="", pick=8)
def test_every_form_of_the_key_is_masked(key: str, before: str, after: str,
                                         pick: int) -> None:
    masker = SecretMasker([key])
    for form in forms(key):
        text = f"{before}{form}{after}"
        masked = masker.mask(text)
        assert MASK in masked and not leaks(key, masked), (text, masked)
    form = forms(key)[pick % len(forms(key))]
    for cut in range(len(form) + 1):  # the echo cut anywhere: at the end of the text
        masked = masker.mask(f"{before}{form[:cut]}")
        assert not leaks(key, masked), (form[:cut], masked)
        assert masked.startswith(before) or MASK in masked


@settings(max_examples=100, deadline=None)
@given(key=KEYS, text=TEXT)
def test_text_without_the_key_is_left_alone(key: str, text: str) -> None:
    if not leaks(key, text):
        assert SecretMasker([key]).mask(text) == text


def test_a_cut_copy_and_the_text_around_it() -> None:
    key = "1234/abcdef0123456789"
    masker = SecretMasker([key])
    body = '{"error":"invalid key 1234\\/abcdef01'
    assert masker.mask(body) == '{"error":"invalid key ***'
    assert masker.mask("key 1234%2Fabcdef0123... was refused") == "key ***... was refused"
    assert masker.mask("key 1234%2Fabcdef01%") == "key ***"  # half an escape at the end
    assert masker.mask("key 1234\\u002Fabcdef01\\u00") == "key ***"
    assert masker.mask("1234/abc is the account") == "*** is the account"
    assert masker.mask("1234/ab is short") == "1234/ab is short"  # 7 characters: not masked


def test_several_secrets_and_the_pattern_backstop() -> None:
    masker = SecretMasker(["first-secret-value", "second/secret/value"])
    text = ('a first-secret-value b second\\/secret\\/value '
            'c password=hunter22 Authorization: Bearer tok3n')
    assert masker.mask(text) == "a *** b *** c password=*** Authorization: Bearer ***"


def test_a_config_problem_about_a_secret_key_keeps_its_message() -> None:
    # before 2026-12-04: "sinks.td.write_key: *** should be a valid string"
    masker = SecretMasker(["1234/abcdef0123456789"])
    for line in ("sinks.td.write_key: Input should be a valid string",
                 "sinks.td.write_key: environment variable TD_WRITE_KEY is not set",
                 "sources.k.sasl_plain_password: Field required"):
        assert masker.mask(line) == line
    # the backstop still hides a value after the same names in other forms
    assert masker.mask("write_key: abc td.write_key=abc x.password: 'abc' "
                       "X-TD-Write-Key: 9/zz") == (
        "write_key: *** td.write_key=*** x.password: '***' X-TD-Write-Key: ***")
    assert masker.mask("sinks.td.write_key: 1234/abcdef0123456789") == "sinks.td.write_key: ***"
