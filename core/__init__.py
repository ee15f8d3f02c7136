"""finetune-ops core services: plain functions over the store, no faces.

Nothing in this package knows about Slack, MCP or terminals. Faces (``bot``,
``mcp_server``) parse input, call one function here and render the result.
"""

__version__ = "0.1.0"
