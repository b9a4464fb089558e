"""Request bodies, declared once: validation and the OpenAPI description both come from these models."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CLOTHING = ("topwear", "bottomwear")
MAX_PROMPT = 1000


Body = TypeVar("Body", bound=BaseModel)


class BodyError(ValueError):
    """The body is not a valid request; the message is shown to the API caller."""


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    image: str = Field(
        min_length=1, description="http(s) URL, data: URI or base64 image; center-cropped to 512x512"
    )
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT, examples=["a person wearing blue jeans"])
    clothing: Literal["topwear", "bottomwear"] = "topwear"

    @field_validator("clothing", mode="before")
    @classmethod
    def _null_is_default(cls, value: object) -> object:
        return "topwear" if value is None else value


class PreviewBody(BaseModel):
    """The free preview (our extension, not Segmind's): the same image and clothing as a submit; the prompt is
    optional and only checked for something the engine can apply."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    image: str = Field(
        min_length=1, description="http(s) URL, data: URI or base64 image; center-cropped to 512x512"
    )
    prompt: str = Field(default="", max_length=MAX_PROMPT, examples=["a person wearing blue jeans"])
    clothing: Literal["topwear", "bottomwear"] = "topwear"

    @field_validator("clothing", mode="before")
    @classmethod
    def _null_is_default(cls, value: object) -> object:
        return "topwear" if value is None else value


_FIELD_MESSAGES = {
    "image": "image is required (an http(s) URL, a data: URI or base64 image bytes)",
    "prompt": "prompt is required",
    "clothing": f"clothing must be one of {CLOTHING[0]}, {CLOTHING[1]}",
}


def parse_submit(raw: bytes) -> SubmitBody:
    """Bytes of a request body -> SubmitBody, or BodyError with the message Segmind-style clients expect."""
    return _parse(SubmitBody, raw)


def parse_preview(raw: bytes) -> PreviewBody:
    return _parse(PreviewBody, raw)


def _parse(model: type[Body], raw: bytes) -> Body:
    if not raw.strip():
        raise BodyError("Request body must be a JSON object with image, prompt and clothing")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise BodyError("Request body must be JSON") from None
        loc = first["loc"]
        name = str(loc[0]) if loc else ""
        if name not in _FIELD_MESSAGES:
            raise BodyError("Request body must be a JSON object with image, prompt and clothing") from None
        if name == "prompt" and first["type"] == "string_too_long":
            raise BodyError(f"prompt is too long (at most {MAX_PROMPT} characters)") from None
        raise BodyError(_FIELD_MESSAGES[name]) from None


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}
