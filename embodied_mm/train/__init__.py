"""Fine-tuning: alignment pre-training and instruction tuning on demonstrations (Accelerate)."""
