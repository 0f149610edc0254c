"""Neural building blocks and models: MIL head, GL-MHSA transformer, memory unit, UR-DMU,
the LGT block, LEC-VAD, and (in their own modules) GS-MoE experts and MoME memory experts."""
from .attention import FeedForward, GLMHSA, GLTransformer, local_attention_weights
from .lecvad import LECVAD, LECVADConfig
from .lgt import LGTBlock
from .memory import MemoryUnit
from .mil_head import MILHead
from .mome import LGTDetector, MoME, MoMEConfig
from .urdmu import URDMU, URDMUConfig

__all__ = ["MILHead", "URDMU", "URDMUConfig", "GLMHSA", "GLTransformer", "FeedForward",
           "local_attention_weights", "MemoryUnit", "LGTBlock", "LECVAD", "LECVADConfig",
           "MoME", "MoMEConfig", "LGTDetector"]
