"""The agent face: one typed MCP tool per core operation."""
