"""Fine-tuning providers: one module per provider, one base class, one registry.

Provider SDKs (boto3, openai, transformers) are imported only inside this package.
"""
