"""The human faces: the `finetune` CLI and the `/finetune` Slack command share one grammar."""
