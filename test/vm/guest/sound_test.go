package guest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/device/alsa"
)

// ctlCardInfo mirrors struct snd_ctl_card_info (include/uapi/sound/asound.h):
// only ints and byte arrays, so its layout is the same on every arch.
type ctlCardInfo struct {
	Card       int32
	_          int32
	ID         [16]byte
	Driver     [16]byte
	Name       [32]byte
	LongName   [80]byte
	_          [16]byte
	MixerName  [80]byte
	Components [128]byte
}

// sndrvCtlIoctlCardInfo is _IOR('U', 0x01, struct snd_ctl_card_info).
const sndrvCtlIoctlCardInfo = 2<<30 | uintptr(unsafe.Sizeof(ctlCardInfo{}))<<16 | 'U'<<8 | 0x01

func cstr(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// loopbackCard returns the card index of snd-aloop, from /proc/asound/cards.
func loopbackCard(t *testing.T) int {
	t.Helper()
	cards := readText("/proc/asound/cards")
	for _, line := range strings.Split(cards, "\n") {
		var index int
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "%d [Loopback", &index); err == nil {
			return index
		}
	}
	t.Fatalf("no Loopback card in /proc/asound/cards:\n%s", cards)
	return -1
}

// TestSoundCard checks snd-aloop through the kernel's own interfaces, with
// no ALSA library: the card is listed, its PCM nodes exist, and the control
// device answers SNDRV_CTL_IOCTL_CARD_INFO. It runs in the static build
// too, where device/alsa (miniaudio, cgo) cannot.
func TestSoundCard(t *testing.T) {
	inGuest(t)
	if unsafe.Sizeof(ctlCardInfo{}) != 376 {
		t.Fatalf("snd_ctl_card_info is 376 bytes, the mirror %d", unsafe.Sizeof(ctlCardInfo{}))
	}
	card := loopbackCard(t)
	for _, node := range []string{"controlC%d", "pcmC%dD0p", "pcmC%dD0c", "pcmC%dD1p", "pcmC%dD1c"} {
		path := "/dev/snd/" + fmt.Sprintf(node, card)
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Errorf("%s: %v", path, err)
		} else if st.Mode&unix.S_IFMT != unix.S_IFCHR {
			t.Errorf("%s is not a character device", path)
		}
	}
	f, err := os.Open(fmt.Sprintf("/dev/snd/controlC%d", card))
	if err != nil {
		t.Fatalf("open control device: %v", err)
	}
	defer f.Close()
	var info ctlCardInfo
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), sndrvCtlIoctlCardInfo, uintptr(unsafe.Pointer(&info))); errno != 0 {
		t.Fatalf("SNDRV_CTL_IOCTL_CARD_INFO: %v", errno)
	}
	t.Logf("card %d: id %q, driver %q, name %q, long name %q", info.Card, cstr(info.ID[:]), cstr(info.Driver[:]), cstr(info.Name[:]), cstr(info.LongName[:]))
	if int(info.Card) != card || cstr(info.ID[:]) != "Loopback" || cstr(info.Driver[:]) != "Loopback" {
		t.Errorf("card info %d %q %q, want %d \"Loopback\" \"Loopback\"", info.Card, cstr(info.ID[:]), cstr(info.Driver[:]), card)
	}
	if _, err := alsa.List(); err != nil {
		// In the static build device/alsa says why it cannot work, which is
		// what the daemon logs before it falls back to the tone.
		t.Logf("device/alsa in this build: %v", err)
	}
}
