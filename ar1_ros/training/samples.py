"""Dataset samples (data.dataset_shards) -> training sequences, on the CPU, in loader workers.

The tokenizers and the action space are copied to the CPU once: the network itself may live on
a GPU, and building sequences there would serialise the loader with the training step.
"""
import bisect
import copy
import types
from typing import List, Optional, Sequence

import torch

from ar1_ros.data.dataset_shards import TrainingDataset, TrainingSample
from ar1_ros.model.api import AR1Model
from ar1_ros.training.grpo import GrpoPrompt, build_prompt
from ar1_ros.training.sequences import SftExample, build_example


class _CpuParts:
    """What build_example reads from the network, on the CPU (no module weights)."""

    def __init__(self, model: AR1Model):
        net = model.network
        self.hist_tokenizer = copy.deepcopy(net.hist_tokenizer)
        self.traj_tokenizer = copy.deepcopy(net.traj_tokenizer)
        self.action_space = copy.deepcopy(net.action_space).to('cpu', torch.float32)
        self.vlm = types.SimpleNamespace(config=net.vlm.config)


class SampleSequences(torch.utils.data.Dataset):
    """Several `ar1 dataset build` folders as one dataset of SftExample.

    use_labels=False trains every sample trajectory-only (its CoC is ignored); max_samples
    keeps the first N samples (quick experiments, overfit tests).
    """

    def __init__(self, folders: Sequence[str], model: AR1Model, use_labels: bool = True,
                 max_samples: Optional[int] = None):
        if model.preprocessor is None:
            raise ValueError('the model has no tokenizer: set model.vlm_path to a folder with '
                             "the backbone's tokenizer files")
        self.datasets: List[TrainingDataset] = [TrainingDataset(f) for f in folders]
        self.offsets = [0]
        for dataset in self.datasets:
            self.offsets.append(self.offsets[-1] + len(dataset))
        self.length = self.offsets[-1] if max_samples is None else min(max_samples,
                                                                       self.offsets[-1])
        if self.length == 0:
            raise ValueError(f'no training samples in {list(folders)}')
        self.parts, self.pre, self.use_labels = _CpuParts(model), model.preprocessor, use_labels

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int) -> TrainingSample:
        """Return the dataset sample behind a global index."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        which = bisect.bisect_right(self.offsets, index) - 1
        return self.datasets[which][index - self.offsets[which]]

    @property
    def labelled(self) -> int:
        """Number of samples with a reasoning label (over all folders)."""
        return sum(d.labelled_count for d in self.datasets)

    def __getitem__(self, index: int) -> SftExample:
        sample = self.sample(index)
        coc = sample.label.coc if (self.use_labels and sample.label is not None) else None
        return build_example(self.parts, self.pre, sample.images, sample.ego_history_xyz,
                             sample.ego_history_rot, sample.ego_future_xyz,
                             sample.ego_future_rot, coc)


class PromptSamples(SampleSequences):
    """The same samples as GRPO prompts (inference prompt + ground truth), see training.grpo."""

    def __getitem__(self, index: int) -> GrpoPrompt:
        return build_prompt(self.parts, self.pre, self.sample(index))
