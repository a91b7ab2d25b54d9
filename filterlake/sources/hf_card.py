"""Model metadata from a Hub repository's model card (YAML front matter) and config.json (timm, transformers)."""

from __future__ import annotations

from typing import Any

import yaml

# Pipeline tags that name the task a CNN was trained for; other tags (feature extraction, text tasks) only
# go to the extra metadata. The task is the tag in words ("image-classification" -> "image classification").
TASK_PIPELINE_TAGS = frozenset(
    {
        "image-classification",
        "object-detection",
        "image-segmentation",
        "depth-estimation",
        "image-to-image",
        "keypoint-detection",
        "mask-generation",
        "video-classification",
        "zero-shot-image-classification",
        "zero-shot-object-detection",
        "unconditional-image-generation",
        "text-to-image",
    }
)


def front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a model card (between its first two `---` lines); {} when it has none.
    yaml.YAMLError when it is not valid YAML."""
    lines = text.lstrip("\ufeff").splitlines()
    end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), None)
    if not lines or lines[0].strip() != "---" or end is None:
        return {}
    data = yaml.safe_load("\n".join(lines[1:end]))
    return data if isinstance(data, dict) else {}


def _words(value: Any) -> list[str]:
    """A card value that may be one string or a list of them, as a list of strings."""
    values = value if isinstance(value, list) else [value] if value else []
    return [str(v) for v in values if v not in (None, "")]


def repo_metadata(repo: str, commit: str, card: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Model metadata ({fields..., "extra": {...}}) from the card's front matter and timm's/transformers'
    config.json: license, datasets as training dataset, a vision pipeline tag as task, the architecture."""
    named = card.get("license_name") if card.get("license") == "other" else None
    license_ = ", ".join(_words(named or card.get("license")))
    pipeline_tag = card.get("pipeline_tag") if isinstance(card.get("pipeline_tag"), str) else None
    pretrained = config.get("pretrained_cfg") if isinstance(config.get("pretrained_cfg"), dict) else {}
    architecture = (
        config.get("architecture")
        or pretrained.get("architecture")
        or next(iter(_words(config.get("architectures"))), None)
    )
    fields = {
        "architecture": str(architecture) if architecture else None,
        "task": pipeline_tag.replace("-", " ") if pipeline_tag in TASK_PIPELINE_TAGS else None,
        "training_dataset": ", ".join(_words(card.get("datasets"))) or None,
        "license": license_ or None,
    }
    extra = {
        "hf_repo": repo,
        "hf_commit": commit,
        "hf_tags": _words(card.get("tags")),
        "hf_pipeline_tag": pipeline_tag,
        "hf_datasets": _words(card.get("datasets")),
        "hf_library_name": card.get("library_name"),
    }
    return {**{k: v for k, v in fields.items() if v}, "extra": {k: v for k, v in extra.items() if v}}
