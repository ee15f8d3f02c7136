"""`python -m bot ...` is the `finetune` command."""

from bot.cli import main

main()
