"""Neural building blocks and models: MIL head, GL-MHSA transformer, memory unit, UR-DMU."""
from .attention import FeedForward, GLMHSA, GLTransformer, local_attention_weights
from .memory import MemoryUnit
from .mil_head import MILHead
from .urdmu import URDMU, URDMUConfig

__all__ = ["MILHead", "URDMU", "URDMUConfig", "GLMHSA", "GLTransformer", "FeedForward",
           "local_attention_weights", "MemoryUnit"]
