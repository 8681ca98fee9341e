"""``StackFill``: how both cameras' ``acquire`` fill a ``Stack`` (in-process and remote)."""

from __future__ import annotations

import numpy as np
import pytest

from labcam import CameraError, Frame, FrameMeta
from labcam.camera_api import StackFill


def _frame(number: int, shape: tuple[int, ...] = (4, 6), dtype: str = "uint16") -> Frame:
    array = np.full(shape, number, dtype=dtype)
    meta = FrameMeta(number, 100.0 + number, 1.0, 0.0, (0, 0, shape[1], shape[0]), "mono16", "S1")
    return Frame(array, meta)


def test_frames_go_into_one_array_in_arrival_order() -> None:
    fill = StackFill(3, _frame(7))
    assert (fill.count, fill.full) == (1, False)
    fill.add(_frame(8))
    fill.add(_frame(10))
    assert fill.full
    stack = fill.stack(dropped=1)
    assert stack.shape == (3, 4, 6) and stack.dtype == np.uint16
    assert list(stack.frame_numbers) == [7, 8, 10] and stack.dropped == 1
    assert [int(stack.array[i, 0, 0]) for i in range(3)] == [7, 8, 10]


@pytest.mark.parametrize("other", [_frame(8, shape=(4, 5)), _frame(8, dtype="uint8")])
def test_a_frame_of_another_shape_or_dtype_is_refused_and_changes_nothing(other: Frame) -> None:
    fill = StackFill(2, _frame(7))
    with pytest.raises(CameraError, match="frame size or pixel format changed"):
        fill.add(other)
    assert fill.count == 1 and not fill.full
