"""Breed names as people type them: "Lab", "german shepherd", "Pit Bull", "yorkie" → the
Stanford Dogs class; an unknown or ambiguous name is refused with the names it could mean."""

from __future__ import annotations

import difflib
import re

from pawdex.core.errors import PawdexError
from pawdex.taxonomy import BREED_NAMES


class UnknownBreed(PawdexError):
    """A breed name that is not one of the 120, nor a common name of one (the API answers
    422 with close matches)."""


def _key(text: str) -> str:
    return re.sub(r"[\s_\-']+", " ", text.strip().lower())


# Shelter and everyday names → the Stanford Dogs classes they mean (several: ambiguous).
COMMON_NAMES: dict[str, tuple[str, ...]] = {
    "lab": ("Labrador_retriever",),
    "labrador": ("Labrador_retriever",),
    "golden": ("golden_retriever",),
    "german shepherd dog": ("German_shepherd",),
    "gsd": ("German_shepherd",),
    "alsatian": ("German_shepherd",),
    "pit bull": ("American_Staffordshire_terrier",),
    "pitbull": ("American_Staffordshire_terrier",),
    "pit bull terrier": ("American_Staffordshire_terrier",),
    "american pit bull terrier": ("American_Staffordshire_terrier",),
    "amstaff": ("American_Staffordshire_terrier",),
    "staffy": ("Staffordshire_bullterrier",),
    "staffie": ("Staffordshire_bullterrier",),
    "staffordshire bull terrier": ("Staffordshire_bullterrier",),
    "yorkie": ("Yorkshire_terrier",),
    "husky": ("Siberian_husky",),
    "alaskan malamute": ("malamute",),
    "rottie": ("Rottweiler",),
    "frenchie": ("French_bulldog",),
    "boston terrier": ("Boston_bull",),
    "dobermann": ("Doberman",),
    "doberman pinscher": ("Doberman",),
    "min pin": ("miniature_pinscher",),
    "westie": ("West_Highland_white_terrier",),
    "scottie": ("Scotch_terrier",),
    "scottish terrier": ("Scotch_terrier",),
    "sheltie": ("Shetland_sheepdog",),
    "cavalier": ("Blenheim_spaniel",),
    "cavalier king charles spaniel": ("Blenheim_spaniel",),
    "king charles spaniel": ("Blenheim_spaniel",),
    "st bernard": ("Saint_Bernard",),
    "pyrenees": ("Great_Pyrenees",),
    "great pyrenees dog": ("Great_Pyrenees",),
    "bernese": ("Bernese_mountain_dog",),
    "berner": ("Bernese_mountain_dog",),
    "shih tzu": ("Shih-Tzu",),
    "maltese": ("Maltese_dog",),
    "pekingese": ("Pekinese",),
    "lhasa apso": ("Lhasa",),
    "chow chow": ("chow",),
    "belgian malinois": ("malinois",),
    "basset hound": ("basset",),
    "coonhound": ("black-and-tan_coonhound", "bluetick", "redbone", "Walker_hound"),
    "xolo": ("Mexican_hairless",),
    "xoloitzcuintli": ("Mexican_hairless",),
    "greyhound": ("Italian_greyhound", "whippet"),
    "poodle": ("toy_poodle", "miniature_poodle", "standard_poodle"),
    "schnauzer": ("miniature_schnauzer", "standard_schnauzer", "giant_schnauzer"),
    "corgi": ("Pembroke", "Cardigan"),
    "welsh corgi": ("Pembroke", "Cardigan"),
    "pembroke welsh corgi": ("Pembroke",),
    "cardigan welsh corgi": ("Cardigan",),
    "springer spaniel": ("English_springer", "Welsh_springer_spaniel"),
    "mastiff": ("bull_mastiff", "Tibetan_mastiff"),
    "retriever": (
        "golden_retriever",
        "Labrador_retriever",
        "flat-coated_retriever",
        "curly-coated_retriever",
        "Chesapeake_Bay_retriever",
    ),
    "shepherd": ("German_shepherd", "Old_English_sheepdog", "Shetland_sheepdog"),
}
_BY_KEY: dict[str, tuple[str, ...]] = {_key(name): (name,) for name in BREED_NAMES}
for _name in BREED_NAMES:  # "German shepherd", "boxer" … and "golden retriever dog"
    _BY_KEY.setdefault(_key(_name) + " dog", (_name,))
for _alias, _names in COMMON_NAMES.items():
    _BY_KEY.setdefault(_key(_alias), _names)


def resolve_breed(text: str) -> str:
    """The Stanford Dogs class ``text`` names, any case, with spaces or underscores, or by a
    common name; UnknownBreed (with the names it could mean) otherwise."""
    found = _BY_KEY.get(_key(text))
    if found and len(found) == 1:
        return found[0]
    if found:
        raise UnknownBreed(f"breed {text!r} could be any of: {', '.join(found)}")
    close = difflib.get_close_matches(_key(text), list(_BY_KEY), n=5, cutoff=0.6)
    names = list(dict.fromkeys(name for key in close for name in _BY_KEY[key]))
    hint = f"; close: {', '.join(names)}" if names else "; GET /v1/breeds/all lists them"
    raise UnknownBreed(f"unknown breed {text!r}{hint}")


def display_name(breed: str) -> str:
    """A Stanford Dogs name as people write it: Labrador_retriever → "Labrador Retriever",
    black-and-tan_coonhound → "Black-and-tan Coonhound"."""
    return " ".join(word[:1].upper() + word[1:] for word in breed.split("_"))
