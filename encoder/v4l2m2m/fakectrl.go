package v4l2m2m

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

type ctrlKind int

const (
	ctrlInt ctrlKind = iota
	ctrlBool
	ctrlMenu
	ctrlButton
)

// fakeControl is one control of the fake, defined as the driver defines it
// for the encode role (bcm2835_codec_open).
type fakeControl struct {
	id             uint32
	name           string
	kind           ctrlKind
	min, max, step int64
	def            int32
	skip           uint64 // menu entries the driver leaves out
	value          int32
	whileStreaming bool // the fake lets it change while streaming
}

func newFakeControls() []fakeControl {
	controls := []fakeControl{
		{id: cidBitrateMode, kind: ctrlMenu, max: bitrateModeCBR, def: bitrateModeVBR},
		{id: cidBitrate, kind: ctrlInt, min: 25000, max: 25000000, step: 25000, def: 10000000, whileStreaming: true},
		{id: cidHeaderMode, kind: ctrlMenu, max: headerModeJoinedWith1stFrame, def: headerModeJoinedWith1stFrame},
		{id: cidRepeatSeqHeader, kind: ctrlBool, max: 1, step: 1},
		{id: cidH264IPeriod, kind: ctrlInt, max: 0x7fffffff, step: 1, def: 60},
		{id: cidH264Level, kind: ctrlMenu, max: int64(Level5_1), def: int32(Level4_0)},
		{id: cidH264Profile, kind: ctrlMenu, max: profileHigh, skip: 1 << profileExtended, def: profileHigh},
		{id: cidH264MinQP, kind: ctrlInt, max: 51, step: 1, def: 20},
		{id: cidH264MaxQP, kind: ctrlInt, max: 51, step: 1, def: 51},
		{id: cidForceKeyFrame, kind: ctrlButton, whileStreaming: true},
		{id: cidBFrames, kind: ctrlInt, step: 1},
		{id: cidGOPSize, kind: ctrlInt, max: 0x7fffffff, step: 1, def: 60},
	}
	for i := range controls {
		controls[i].name = controlName(controls[i].id)
		controls[i].value = controls[i].def
	}
	return controls
}

func (f *FakeDevice) find(id uint32) *fakeControl {
	for i := range f.controls {
		if f.controls[i].id == id {
			return &f.controls[i]
		}
	}
	return nil
}

func (f *FakeDevice) value(id uint32) int32 {
	if c := f.find(id); c != nil {
		return c.value
	}
	return 0
}

// validate does what the V4L2 control core does with a new value: integers
// are clamped and rounded to the step, menus are checked. It also applies
// the fake's rule on controls while streaming.
func (f *FakeDevice) validate(c *fakeControl, v int32) (int32, error) {
	if !c.whileStreaming && (f.queues[fakeOut].streaming || f.queues[fakeCap].streaming) {
		return 0, unix.EBUSY
	}
	switch c.kind {
	case ctrlButton:
		return 0, nil
	case ctrlMenu:
		if int64(v) < c.min || int64(v) > c.max {
			return 0, unix.ERANGE
		}
		if v >= 0 && v < 64 && c.skip&(1<<uint(v)) != 0 {
			return 0, unix.EINVAL
		}
		return v, nil
	default:
		x := min(max(int64(v), c.min), c.max)
		if c.step > 1 {
			x = c.min + (x-c.min+c.step/2)/c.step*c.step
			x = min(x, c.max)
		}
		return int32(x), nil
	}
}

// apply sets a validated value, with the driver's side effects.
func (f *FakeDevice) apply(c *fakeControl, v int32) {
	switch c.id {
	case cidForceKeyFrame:
		f.forceKey = true
		return
	case cidH264IPeriod:
		// The driver mirrors H264_I_PERIOD into GOP_SIZE.
		if gop := f.find(cidGOPSize); gop != nil {
			gop.value = v
		}
	case cidBitrate:
		if f.queues[fakeOut].streaming || f.queues[fakeCap].streaming {
			f.stats.BitrateChanges++
		}
	}
	c.value = v
}

func (f *FakeDevice) control(req uintptr, ctrl *v4l2Control) error {
	c := f.find(ctrl.ID)
	if c == nil {
		return unix.EINVAL
	}
	if req == vidiocGCtrl {
		if c.kind == ctrlButton {
			return unix.EACCES // write-only
		}
		ctrl.Value = c.value
		return nil
	}
	v, err := f.validate(c, ctrl.Value)
	if err != nil {
		return err
	}
	f.apply(c, v)
	ctrl.Value = v
	return nil
}

func (f *FakeDevice) extControls(req uintptr, ext *v4l2ExtControls) error {
	count := int(ext.Count)
	if ext.Which != 0 && ext.Which != ctrlClassCodec {
		ext.ErrorIdx = ext.Count
		return unix.EINVAL
	}
	if count == 0 {
		return nil
	}
	if ext.Controls == nil {
		ext.ErrorIdx = ext.Count
		return unix.EFAULT
	}
	list := unsafe.Slice(ext.Controls, count)
	found := make([]*fakeControl, count)
	for i := range list {
		c := f.find(list[i].ID)
		if c == nil {
			ext.ErrorIdx = uint32(i)
			return unix.EINVAL
		}
		found[i] = c
	}
	if req == vidiocGExtCtrls {
		for i, c := range found {
			if c.kind == ctrlButton {
				ext.ErrorIdx = uint32(i)
				return unix.EACCES
			}
			list[i].Value, list[i].ValueHigh = c.value, 0
		}
		return nil
	}
	values := make([]int32, count)
	for i, c := range found {
		v, err := f.validate(c, list[i].Value)
		if err != nil {
			// The core reports a failed validation of S_EXT_CTRLS with
			// error_idx = count: nothing was changed.
			ext.ErrorIdx = ext.Count
			if req == vidiocTryExtCtrls {
				ext.ErrorIdx = uint32(i)
			}
			return err
		}
		values[i] = v
	}
	for i, c := range found {
		if req == vidiocSExtCtrls {
			f.apply(c, values[i])
		}
		list[i].Value = values[i]
	}
	return nil
}
