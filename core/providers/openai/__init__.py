"""OpenAI and Azure OpenAI fine-tuning (one client, two endpoints)."""

from core.providers.openai.provider import OpenAIProvider, azure_provider, openai_provider

__all__ = ["OpenAIProvider", "azure_provider", "openai_provider"]
