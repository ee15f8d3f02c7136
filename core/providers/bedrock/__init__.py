"""Amazon Bedrock model customization (Nova, Llama; Claude 3 Haiku as legacy)."""

from core.providers.bedrock.provider import BedrockProvider

__all__ = ["BedrockProvider"]
