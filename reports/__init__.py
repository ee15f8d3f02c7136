"""Reports: analytics results turned into digests (Block Kit, Markdown/HTML, PNG charts)."""
