"""The layers the adapters attach to by default: each family's list starts from these."""

DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # a UNet's attention projections, as in the paper
JOINT_TARGETS = ("add_q_proj", "add_k_proj", "add_v_proj", "to_add_out")  # + the text stream's of SD3 / Flux blocks
