"""The in-code tiny pipelines' tokenizer: listed words are single tokens, anything else still encodes."""

import pytest

from paircustom.tiny.unet import BASE_WORDS, write_clip_tokenizer

# Word lists where a naive left-to-right merge chain breaks later words ("g r" of green vs background).
WORD_LISTS = [
    BASE_WORDS,
    ("in", "line", "green", "background", "square", "colors", "grayscale", "posterized"),
    ("aaa", "aa", "a", "ab", "ba", "bab"),
]


@pytest.mark.parametrize("words", WORD_LISTS)
def test_every_listed_word_is_one_token(words, tmp_path):
    tokenizer = write_clip_tokenizer(tmp_path, words)
    split = {word: tokenizer.tokenize(word) for word in words if len(tokenizer.tokenize(word)) != 1}
    assert not split, f"words split into several tokens: {split}"


def test_unknown_words_fall_back_to_letters(tmp_path):
    tokenizer = write_clip_tokenizer(tmp_path, ("dog",))
    assert tokenizer.tokenize("dog zebra") == ["dog</w>", "z", "e", "b", "r", "a</w>"]
    assert tokenizer.unk_token_id not in tokenizer("zebra").input_ids[1:-1]
