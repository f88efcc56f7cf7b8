package v4l2m2m

import (
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The fake's rules, driven with raw ioctls: each sequence must fail the way
// the driver (or videobuf2, or the V4L2 core) fails it.

func setFormat(d Device, bufType, code uint32, width, height int) (v4l2PixFormatMplane, error) {
	var f v4l2Format
	f.Type = bufType
	f.Fmt.PixMP = v4l2PixFormatMplane{Width: uint32(width), Height: uint32(height), PixelFormat: code, NumPlanes: 1}
	err := d.Ioctl(vidiocSFmt, unsafe.Pointer(&f))
	return f.Fmt.PixMP, err
}

func reqBufs(d Device, bufType uint32, count int) (int, error) {
	req := v4l2RequestBuffers{Count: uint32(count), Type: bufType, Memory: memoryMMAP}
	err := d.Ioctl(vidiocReqBufs, unsafe.Pointer(&req))
	return int(req.Count), err
}

func bufferIoctl(d Device, req uintptr, bufType uint32, index int, bytesUsed uint32) (v4l2Buffer, v4l2Plane, error) {
	var planes [1]v4l2Plane
	planes[0].BytesUsed = bytesUsed
	b := v4l2Buffer{Index: uint32(index), Type: bufType, Memory: memoryMMAP, Planes: &planes[0], Length: 1}
	err := d.Ioctl(req, unsafe.Pointer(&b))
	return b, planes[0], err
}

func streamIoctl(d Device, req uintptr, bufType uint32) error {
	t := int32(bufType)
	return d.Ioctl(req, unsafe.Pointer(&t))
}

func setCtrl(d Device, id uint32, value int32) (int32, error) {
	c := v4l2Control{ID: id, Value: value}
	err := d.Ioctl(vidiocSCtrl, unsafe.Pointer(&c))
	return c.Value, err
}

// streamingFake is a fake set up for 640x480 I420 with two buffers on each
// queue, the CAPTURE ones queued, both queues streaming.
func streamingFake(t *testing.T, cfg FakeConfig) *FakeDevice {
	t.Helper()
	d := NewFakeDevice(cfg)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := setFormat(d, bufTypeVideoCaptureMplane, pixFmtH264, 640, 480)
	must(err)
	_, err = setFormat(d, bufTypeVideoOutputMplane, pixFmtYUV420, 640, 480)
	must(err)
	_, err = setCtrl(d, cidH264Level, int32(Level3_0))
	must(err)
	_, err = reqBufs(d, bufTypeVideoOutputMplane, 2)
	must(err)
	_, err = reqBufs(d, bufTypeVideoCaptureMplane, 2)
	must(err)
	for i := 0; i < 2; i++ {
		_, _, err = bufferIoctl(d, vidiocQBuf, bufTypeVideoCaptureMplane, i, 0)
		must(err)
	}
	must(streamIoctl(d, vidiocStreamOn, bufTypeVideoOutputMplane))
	must(streamIoctl(d, vidiocStreamOn, bufTypeVideoCaptureMplane))
	return d
}

func wantErrno(t *testing.T, what string, err error, want unix.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

func TestFakeMultiPlanarOnly(t *testing.T) {
	d := NewFakeDevice(FakeConfig{})
	_, err := setFormat(d, bufTypeVideoCapture, pixFmtH264, 640, 480)
	wantErrno(t, "S_FMT single-planar CAPTURE", err, unix.EINVAL)
	_, err = setFormat(d, bufTypeVideoOutput, pixFmtYUV420, 640, 480)
	wantErrno(t, "S_FMT single-planar OUTPUT", err, unix.EINVAL)
	_, err = reqBufs(d, bufTypeVideoOutput, 2)
	wantErrno(t, "REQBUFS single-planar", err, unix.EINVAL)
	wantErrno(t, "STREAMON single-planar", streamIoctl(d, vidiocStreamOn, bufTypeVideoCapture), unix.EINVAL)
	// ENUM_FMT takes both, as the V4L2 core maps them to one callback.
	for _, bt := range []uint32{bufTypeVideoCapture, bufTypeVideoCaptureMplane} {
		desc := v4l2Fmtdesc{Type: bt}
		if err := d.Ioctl(vidiocEnumFmt, unsafe.Pointer(&desc)); err != nil || desc.PixelFormat != pixFmtH264 {
			t.Errorf("ENUM_FMT type %d: %v %s", bt, err, fourccString(desc.PixelFormat))
		}
	}
	req := v4l2RequestBuffers{Count: 2, Type: bufTypeVideoOutputMplane, Memory: 2} // V4L2_MEMORY_USERPTR
	wantErrno(t, "REQBUFS USERPTR", d.Ioctl(vidiocReqBufs, unsafe.Pointer(&req)), unix.EINVAL)
	wantErrno(t, "unknown request", d.Ioctl(iowr('V', 99, 4), unsafe.Pointer(&req)), unix.ENOTTY)
}

func TestFakeTryFormat(t *testing.T) {
	tests := []struct {
		code              uint32
		width, height     int
		wantW, wantH      uint32
		wantBPL, wantSize uint32
	}{
		{pixFmtYUV420, 322, 242, 322, 242, 384, 384 * 242 * 3 / 2},
		{pixFmtNV12, 322, 242, 322, 242, 352, 352 * 242 * 3 / 2},
		{pixFmtYUYV, 322, 242, 322, 242, 704, 704 * 242},
		{pixFmtYUV420, 1920, 1080, 1920, 1080, 1920, 1920 * 1080 * 3 / 2},
		{pixFmtYUV420, 4000, 10, 1920, 32, 1920, 1920 * 32 * 3 / 2},
		{fourcc('X', 'X', 'X', 'X'), 640, 480, 640, 480, 640, 640 * 480 * 3 / 2}, // unknown: the first format
	}
	for _, tt := range tests {
		d := NewFakeDevice(FakeConfig{})
		pix, err := setFormat(d, bufTypeVideoOutputMplane, tt.code, tt.width, tt.height)
		if err != nil {
			t.Fatal(err)
		}
		if pix.Width != tt.wantW || pix.Height != tt.wantH || pix.PlaneFmt[0].BytesPerLine != tt.wantBPL ||
			pix.PlaneFmt[0].SizeImage != tt.wantSize || pix.NumPlanes != 1 {
			t.Errorf("%s %dx%d: got %dx%d bpl %d size %d", fourccString(tt.code), tt.width, tt.height,
				pix.Width, pix.Height, pix.PlaneFmt[0].BytesPerLine, pix.PlaneFmt[0].SizeImage)
		}
	}
	d := NewFakeDevice(FakeConfig{})
	for _, tt := range []struct {
		width, height int
		ask, want     uint32
	}{{1280, 720, 0, 512 << 10}, {1920, 1080, 0, 768 << 10}, {1920, 1080, 2 << 20, 2 << 20}} {
		var f v4l2Format
		f.Type = bufTypeVideoCaptureMplane
		f.Fmt.PixMP = v4l2PixFormatMplane{Width: uint32(tt.width), Height: uint32(tt.height), PixelFormat: pixFmtH264}
		f.Fmt.PixMP.PlaneFmt[0].SizeImage = tt.ask
		if err := d.Ioctl(vidiocTryFmt, unsafe.Pointer(&f)); err != nil || f.Fmt.PixMP.PlaneFmt[0].SizeImage != tt.want {
			t.Errorf("coded %dx%d asking %d: %v, sizeimage %d, want %d", tt.width, tt.height, tt.ask, err, f.Fmt.PixMP.PlaneFmt[0].SizeImage, tt.want)
		}
	}
}

func TestFakeStateOrder(t *testing.T) {
	d := NewFakeDevice(FakeConfig{})
	wantErrno(t, "STREAMON without buffers", streamIoctl(d, vidiocStreamOn, bufTypeVideoOutputMplane), unix.EINVAL)
	if _, err := reqBufs(d, bufTypeVideoOutputMplane, 2); err != nil {
		t.Fatal(err)
	}
	_, err := setFormat(d, bufTypeVideoOutputMplane, pixFmtNV12, 640, 480)
	wantErrno(t, "S_FMT with buffers allocated", err, unix.EBUSY)
	_, pl, err := bufferIoctl(d, vidiocQueryBuf, bufTypeVideoOutputMplane, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := d.Mmap(int64(pl.memOffset()), int(pl.Length))
	if err != nil {
		t.Fatal(err)
	}
	_, err = reqBufs(d, bufTypeVideoOutputMplane, 0)
	wantErrno(t, "REQBUFS 0 while mapped", err, unix.EBUSY)
	if err := d.Munmap(mem); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "second munmap", d.Munmap(mem), unix.EINVAL)
	if _, err := reqBufs(d, bufTypeVideoOutputMplane, 0); err != nil {
		t.Fatalf("REQBUFS 0 after munmap: %v", err)
	}
	if _, err := setFormat(d, bufTypeVideoOutputMplane, pixFmtNV12, 640, 480); err != nil {
		t.Fatalf("S_FMT after freeing: %v", err)
	}

	d = streamingFake(t, FakeConfig{})
	_, err = reqBufs(d, bufTypeVideoOutputMplane, 4)
	wantErrno(t, "REQBUFS while streaming", err, unix.EBUSY)
	_, err = setFormat(d, bufTypeVideoCaptureMplane, pixFmtH264, 640, 480)
	wantErrno(t, "S_FMT CAPTURE while streaming", err, unix.EBUSY)
	if n, err := reqBufs(NewFakeDevice(FakeConfig{}), bufTypeVideoCaptureMplane, 100); err != nil || n != vb2MaxFrame {
		t.Errorf("REQBUFS 100: %d, %v", n, err)
	}
}

func TestFakeBufferOwnership(t *testing.T) {
	d := streamingFake(t, FakeConfig{Stall: true}) // nothing comes back
	_, _, err := bufferIoctl(d, vidiocQBuf, bufTypeVideoCaptureMplane, 0, 0)
	wantErrno(t, "QBUF of a queued buffer", err, unix.EINVAL)
	_, _, err = bufferIoctl(d, vidiocQBuf, bufTypeVideoOutputMplane, 2, 0)
	wantErrno(t, "QBUF index out of range", err, unix.EINVAL)
	_, _, err = bufferIoctl(d, vidiocDQBuf, bufTypeVideoCaptureMplane, 0, 0)
	wantErrno(t, "DQBUF with nothing done", err, unix.EAGAIN)
	_, _, err = bufferIoctl(d, vidiocQBuf, bufTypeVideoOutputMplane, 0, 640*480*3/2+1)
	wantErrno(t, "QBUF bytesused above length", err, unix.EINVAL)
	noPlanes := v4l2Buffer{Type: bufTypeVideoOutputMplane, Memory: memoryMMAP, Length: 1}
	wantErrno(t, "QBUF without planes", d.Ioctl(vidiocQBuf, unsafe.Pointer(&noPlanes)), unix.EINVAL)
	if ev, _ := d.Poll(unix.POLLIN|unix.POLLOUT, 0); ev != 0 {
		t.Errorf("Poll on a stalled fake: %#x", ev)
	}
	if st := d.State(); st.Stalled == "" {
		t.Error("Stall not reported")
	}

	if err := streamIoctl(d, vidiocStreamOff, bufTypeVideoCaptureMplane); err != nil {
		t.Fatal(err)
	}
	_, _, err = bufferIoctl(d, vidiocDQBuf, bufTypeVideoCaptureMplane, 0, 0)
	wantErrno(t, "DQBUF while not streaming", err, unix.EINVAL)
	// STREAMOFF gave the buffers back: queueing them again is fine.
	if _, _, err := bufferIoctl(d, vidiocQBuf, bufTypeVideoCaptureMplane, 0, 0); err != nil {
		t.Errorf("QBUF after STREAMOFF: %v", err)
	}
}

func TestFakeEncodesAndDrains(t *testing.T) {
	d := streamingFake(t, FakeConfig{})
	size := uint32(640 * 480 * 3 / 2)
	if _, _, err := bufferIoctl(d, vidiocQBuf, bufTypeVideoOutputMplane, 0, size); err != nil {
		t.Fatal(err)
	}
	if ev, _ := d.Poll(unix.POLLIN|unix.POLLOUT, 0); ev != unix.POLLIN|unix.POLLOUT {
		t.Fatalf("Poll after a picture: %#x", ev)
	}
	b, pl, err := bufferIoctl(d, vidiocDQBuf, bufTypeVideoCaptureMplane, 0, 0)
	if err != nil || b.Flags&bufFlagKeyframe == 0 || pl.BytesUsed == 0 {
		t.Fatalf("first coded buffer: %v flags %#x bytes %d", err, b.Flags, pl.BytesUsed)
	}
	if _, _, err := bufferIoctl(d, vidiocDQBuf, bufTypeVideoOutputMplane, 0, 0); err != nil {
		t.Fatalf("raw buffer back: %v", err)
	}

	cmd := v4l2EncoderCmd{Cmd: encCmdStop}
	// Nothing is queued on OUTPUT: the drain ends at once with an empty
	// LAST buffer (one CAPTURE buffer is still queued).
	if err := d.Ioctl(vidiocEncoderCmd, unsafe.Pointer(&cmd)); err != nil {
		t.Fatal(err)
	}
	b, pl, err = bufferIoctl(d, vidiocDQBuf, bufTypeVideoCaptureMplane, 0, 0)
	if err != nil || b.Flags&bufFlagLast == 0 || pl.BytesUsed != 0 {
		t.Fatalf("last buffer: %v flags %#x bytes %d", err, b.Flags, pl.BytesUsed)
	}
	_, _, err = bufferIoctl(d, vidiocDQBuf, bufTypeVideoCaptureMplane, 0, 0)
	wantErrno(t, "DQBUF after LAST", err, unix.EPIPE)
	if ev, _ := d.Poll(unix.POLLIN, 0); ev&unix.POLLIN == 0 {
		t.Error("Poll after LAST must report POLLIN (DQBUF then says EPIPE)")
	}
	// Stopped: START resumes.
	cmd.Cmd = encCmdStart
	if err := d.Ioctl(vidiocEncoderCmd, unsafe.Pointer(&cmd)); err != nil {
		t.Fatal(err)
	}
	cmd.Cmd = 7
	wantErrno(t, "unknown encoder command", d.Ioctl(vidiocTryEncoderCmd, unsafe.Pointer(&cmd)), unix.EINVAL)

	// A drain that cannot finish yet (more coded output than CAPTURE
	// buffers): STOP again is EBUSY, and the LAST buffer comes after the
	// drained output.
	d = streamingFake(t, FakeConfig{Latency: 5, FragmentBytes: 200})
	if _, _, err := bufferIoctl(d, vidiocQBuf, bufTypeVideoOutputMplane, 0, size); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bufferIoctl(d, vidiocQBuf, bufTypeVideoOutputMplane, 0, size); err == nil {
		t.Fatal("QBUF of a done buffer")
	}
	if _, _, err := bufferIoctl(d, vidiocDQBuf, bufTypeVideoCaptureMplane, 0, 0); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("Latency 5 must hold the picture: %v", err)
	}
	cmd.Cmd = encCmdStop
	if err := d.Ioctl(vidiocEncoderCmd, unsafe.Pointer(&cmd)); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "STOP while draining", d.Ioctl(vidiocEncoderCmd, unsafe.Pointer(&cmd)), unix.EBUSY)
	var got int
	for {
		b, pl, err := bufferIoctl(d, vidiocDQBuf, bufTypeVideoCaptureMplane, 0, 0)
		if err != nil {
			t.Fatalf("drain: %v after %d bytes", err, got)
		}
		if b.Flags&bufFlagLast != 0 {
			break
		}
		got += int(pl.BytesUsed)
		if _, _, err := bufferIoctl(d, vidiocQBuf, bufTypeVideoCaptureMplane, int(b.Index), 0); err != nil {
			t.Fatal(err)
		}
	}
	if got < 1200 {
		t.Fatalf("drained %d bytes of an IDR picture", got)
	}
}

func TestFakeControls(t *testing.T) {
	d := NewFakeDevice(FakeConfig{})
	if v, err := setCtrl(d, cidBitrate, 1234567); err != nil || v != 1225000 {
		t.Errorf("bitrate 1234567: %d %v, want rounded to 1225000", v, err)
	}
	if v, err := setCtrl(d, cidBitrate, 99000000); err != nil || v != 25000000 {
		t.Errorf("bitrate 99M: %d %v, want clamped", v, err)
	}
	_, err := setCtrl(d, cidH264Profile, profileExtended)
	wantErrno(t, "profile extended (skipped by the driver)", err, unix.EINVAL)
	_, err = setCtrl(d, cidH264Level, 16)
	wantErrno(t, "level 5.2", err, unix.ERANGE)
	_, err = setCtrl(d, 0x00980900, 1) // V4L2_CID_BRIGHTNESS
	wantErrno(t, "unknown control", err, unix.EINVAL)
	g := v4l2Control{ID: cidForceKeyFrame}
	wantErrno(t, "G_CTRL of a button", d.Ioctl(vidiocGCtrl, unsafe.Pointer(&g)), unix.EACCES)

	// S_EXT_CTRLS: an unknown ID names itself; a bad value fails the set
	// with error_idx = count and changes nothing.
	list := []v4l2ExtControl{{ID: cidBitrate, Value: 2000000}, {ID: 0x00980900}}
	ext := v4l2ExtControls{Which: ctrlClassCodec, Count: 2, Controls: &list[0]}
	wantErrno(t, "S_EXT_CTRLS unknown", d.Ioctl(vidiocSExtCtrls, unsafe.Pointer(&ext)), unix.EINVAL)
	if ext.ErrorIdx != 1 {
		t.Errorf("error_idx %d, want 1", ext.ErrorIdx)
	}
	list = []v4l2ExtControl{{ID: cidBitrate, Value: 2000000}, {ID: cidH264Profile, Value: 9}}
	ext = v4l2ExtControls{Which: ctrlClassCodec, Count: 2, Controls: &list[0]}
	wantErrno(t, "S_EXT_CTRLS bad menu", d.Ioctl(vidiocSExtCtrls, unsafe.Pointer(&ext)), unix.ERANGE)
	if ext.ErrorIdx != 2 || d.State().Controls["bitrate"] == 2000000 {
		t.Errorf("error_idx %d, bitrate %d: a failed set must change nothing", ext.ErrorIdx, d.State().Controls["bitrate"])
	}
	ext = v4l2ExtControls{Which: 0x00980000, Count: 2, Controls: &list[0]} // the user class
	wantErrno(t, "S_EXT_CTRLS wrong class", d.Ioctl(vidiocSExtCtrls, unsafe.Pointer(&ext)), unix.EINVAL)
	if _, err := setCtrl(d, cidH264IPeriod, 45); err != nil || d.State().Controls["gop_size"] != 45 {
		t.Errorf("I period does not update gop_size: %v", err)
	}

	// While streaming, only bitrate and force_key_frame change.
	d = streamingFake(t, FakeConfig{})
	for _, id := range []uint32{cidH264Profile, cidH264Level, cidBitrateMode, cidRepeatSeqHeader, cidH264IPeriod, cidHeaderMode} {
		_, err := setCtrl(d, id, 1)
		wantErrno(t, "while streaming: "+controlName(id), err, unix.EBUSY)
	}
	for _, id := range []uint32{cidBitrate, cidForceKeyFrame} {
		if _, err := setCtrl(d, id, 3000000); err != nil {
			t.Errorf("while streaming: %s: %v", controlName(id), err)
		}
	}
}

func TestFakeStallsLikeTheFirmware(t *testing.T) {
	tests := []struct {
		name     string
		controls map[uint32]int32
		width    int
		coded    int
	}{
		{"level too low", map[uint32]int32{cidH264Level: int32(Level3_0)}, 1280, 1280},
		{"CBR with CABAC", map[uint32]int32{cidH264Level: int32(Level4_0), cidH264Profile: profileMain, cidBitrateMode: bitrateModeCBR}, 1280, 1280},
		{"above 20 Mbit/s", map[uint32]int32{cidH264Level: int32(Level4_0), cidH264Profile: profileConstrainedBaseline, cidBitrate: 22000000}, 1280, 1280},
		{"coded size", map[uint32]int32{cidH264Level: int32(Level4_0)}, 1280, 640},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewFakeDevice(FakeConfig{})
			if _, err := setFormat(d, bufTypeVideoCaptureMplane, pixFmtH264, tt.coded, 720); err != nil {
				t.Fatal(err)
			}
			if _, err := setFormat(d, bufTypeVideoOutputMplane, pixFmtYUV420, tt.width, 720); err != nil {
				t.Fatal(err)
			}
			for id, v := range tt.controls {
				if _, err := setCtrl(d, id, v); err != nil {
					t.Fatalf("%s: %v (the driver takes it silently)", controlName(id), err)
				}
			}
			for _, bt := range []uint32{bufTypeVideoOutputMplane, bufTypeVideoCaptureMplane} {
				if _, err := reqBufs(d, bt, 1); err != nil {
					t.Fatal(err)
				}
				if err := streamIoctl(d, vidiocStreamOn, bt); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := bufferIoctl(d, vidiocQBuf, bufTypeVideoCaptureMplane, 0, 0); err != nil {
				t.Fatal(err)
			}
			if _, _, err := bufferIoctl(d, vidiocQBuf, bufTypeVideoOutputMplane, 0, 0); err != nil {
				t.Fatal(err)
			}
			_, _, err := bufferIoctl(d, vidiocDQBuf, bufTypeVideoCaptureMplane, 0, 0)
			wantErrno(t, "DQBUF from a stalled firmware", err, unix.EAGAIN)
			if st := d.State(); st.Stalled == "" || st.Stats.FramesEncoded != 0 {
				t.Fatalf("not stalled: %+v", st)
			}
		})
	}
}

func TestFakeFailAndClose(t *testing.T) {
	d := streamingFake(t, FakeConfig{})
	d.Fail()
	_, _, err := bufferIoctl(d, vidiocDQBuf, bufTypeVideoCaptureMplane, 0, 0)
	wantErrno(t, "DQBUF after a fatal error", err, unix.EIO)
	if ev, _ := d.Poll(unix.POLLIN, 0); ev&unix.POLLERR == 0 {
		t.Error("Poll after a fatal error must report POLLERR")
	}
	var c v4l2Capability
	if err := d.Ioctl(vidiocQueryCap, unsafe.Pointer(&c)); err != nil {
		t.Errorf("QUERYCAP after a fatal error: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "ioctl after Close", d.Ioctl(vidiocQueryCap, unsafe.Pointer(&c)), unix.EBADF)
	wantErrno(t, "second Close", d.Close(), unix.EBADF)
}

func TestFakeRoles(t *testing.T) {
	for _, tt := range []struct {
		role  FakeRole
		card  string
		caps  uint32
		coded uint32
	}{
		{FakeEncoder, "bcm2835-codec-encode", capVideoM2MMplane, pixFmtH264},
		{FakeDecoder, "bcm2835-codec-decode", capVideoM2MMplane, pixFmtYUV420},
		{FakeCamera, "Fake Webcam", capVideoCapture, pixFmtYUV420},
		{FakeSinglePlanarEncoder, "fake-encoder", capVideoM2M, pixFmtH264},
	} {
		d := NewFakeDevice(FakeConfig{Role: tt.role})
		var c v4l2Capability
		if err := d.Ioctl(vidiocQueryCap, unsafe.Pointer(&c)); err != nil {
			t.Fatal(err)
		}
		desc := v4l2Fmtdesc{Type: bufTypeVideoCaptureMplane}
		d.Ioctl(vidiocEnumFmt, unsafe.Pointer(&desc))
		if cString(c.Card[:]) != tt.card || c.DeviceCaps&^capStreaming != tt.caps || desc.PixelFormat != tt.coded {
			t.Errorf("role %d: card %q caps %#x first coded %s", tt.role, cString(c.Card[:]), c.DeviceCaps, fourccString(desc.PixelFormat))
		}
	}
}
