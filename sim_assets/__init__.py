"""Robot and object descriptions, tokenizer files and the shipped default checkpoint."""
