package audience

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var inviteEpoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func openTestInvites(t testing.TB, dir string, clock *fakeWall) *Invites {
	t.Helper()
	s, err := OpenInvites(dir, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newInvites(t testing.TB) (*Invites, *fakeWall, string) {
	t.Helper()
	clock := &fakeWall{now: inviteEpoch}
	dir := t.TempDir()
	return openTestInvites(t, dir, clock), clock, dir
}

func mustCreate(t testing.TB, s *Invites, broadcast, name string, ttl time.Duration) Invite {
	t.Helper()
	inv, err := s.Create(broadcast, name, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

var urlSafe = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)

func TestInviteValid(t *testing.T) {
	s, _, _ := newInvites(t)
	inv := mustCreate(t, s, "b1", "  Grandma\n", 0)
	if inv.Name != "Grandma" || inv.BroadcastID != "b1" || !inv.Expires.Equal(inviteEpoch.Add(DefaultInviteTTL)) ||
		!inv.Created.Equal(inviteEpoch) || inv.Revoked || len(inv.ID) != 16 {
		t.Fatalf("invite %+v", inv)
	}
	if len(inv.Token) != 51 || !urlSafe.MatchString(inv.Token) {
		t.Fatalf("token %q is not 51 URL-safe characters", inv.Token)
	}
	got, err := s.Check(inv.Token, "b1")
	if err != nil {
		t.Fatal(err)
	}
	if got != inv {
		t.Fatalf("Check returned %+v, want %+v", got, inv)
	}
}

func TestInviteTTL(t *testing.T) {
	s, _, _ := newInvites(t)
	for _, ttl := range []time.Duration{-time.Hour, time.Second, 59 * time.Second, MaxInviteTTL + time.Second, 365 * 24 * time.Hour} {
		if _, err := s.Create("b1", "x", ttl); !errors.Is(err, ErrBadInvite) || !strings.Contains(err.Error(), "want 1m to 720h") {
			t.Fatalf("ttl %s: %v", ttl, err)
		}
	}
	for _, ttl := range []time.Duration{MinInviteTTL, 90 * time.Minute, MaxInviteTTL} {
		inv := mustCreate(t, s, "b1", "x", ttl)
		if !inv.Expires.Equal(inviteEpoch.Add(ttl)) {
			t.Fatalf("ttl %s: expires %s", ttl, inv.Expires)
		}
	}
	if _, err := s.Create("", "x", 0); !errors.Is(err, ErrBadInvite) {
		t.Fatalf("no broadcast: %v", err)
	}
}

func TestInviteExpires(t *testing.T) {
	s, clock, _ := newInvites(t)
	inv := mustCreate(t, s, "b1", "x", time.Hour)
	clock.Advance(time.Hour - time.Second)
	if _, err := s.Check(inv.Token, "b1"); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	clock.Advance(time.Second)
	if _, err := s.Check(inv.Token, "b1"); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: %v", err)
	}
}

// A box without a real-time clock may reboot into 1970: links that had
// expired by the last invite made must stay expired.
func TestExpiredStaysExpiredWhenTheClockFallsBack(t *testing.T) {
	s, clock, dir := newInvites(t)
	old := mustCreate(t, s, "b1", "old", time.Hour)
	clock.Advance(2 * time.Hour)
	fresh := mustCreate(t, s, "b1", "fresh", time.Hour)

	clock.Set(time.Unix(0, 0)) // reboot without RTC or network
	s = openTestInvites(t, dir, clock)
	if _, err := s.Check(old.Token, "b1"); !errors.Is(err, ErrExpired) {
		t.Fatalf("an expired link came back with the clock in 1970: %v", err)
	}
	if _, err := s.Check(fresh.Token, "b1"); err != nil {
		t.Fatalf("a valid link: %v", err)
	}
	again := mustCreate(t, s, "b1", "made in 1970", time.Hour)
	if again.Created.Before(fresh.Created) {
		t.Fatalf("created %s, before the last invite %s", again.Created, fresh.Created)
	}
}

func TestInviteRevokedSurvivesReopen(t *testing.T) {
	s, clock, dir := newInvites(t)
	keep := mustCreate(t, s, "b1", "keep", 0)
	gone := mustCreate(t, s, "b1", "gone", 0)
	if err := s.Revoke(gone.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(gone.ID); err != nil {
		t.Fatalf("revoke twice: %v", err)
	}
	if err := s.Revoke("0123456789abcdef"); !errors.Is(err, ErrNoSuchInvite) {
		t.Fatalf("revoke an unknown invite: %v", err)
	}
	if _, err := s.Check(gone.Token, "b1"); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked: %v", err)
	}

	s = openTestInvites(t, dir, clock)
	if _, err := s.Check(gone.Token, "b1"); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked, after reopening: %v", err)
	}
	if _, err := s.Check(keep.Token, "b1"); err != nil {
		t.Fatalf("valid, after reopening: %v", err)
	}
	list := s.List()
	if len(list) != 2 || list[0].ID != gone.ID || !list[0].Revoked || list[1].ID != keep.ID || list[1].Token != keep.Token {
		t.Fatalf("list after reopening: %+v", list)
	}
}

func TestListNewestFirstAndPruned(t *testing.T) {
	s, clock, _ := newInvites(t)
	var ids []string
	for _, name := range []string{"a", "b", "c"} {
		ids = append(ids, mustCreate(t, s, "b1", name, time.Hour).ID)
		clock.Advance(time.Minute)
	}
	list := s.List()
	if len(list) != 3 || list[0].ID != ids[2] || list[2].ID != ids[0] {
		t.Fatalf("list %+v", list)
	}
	clock.Advance(8 * 24 * time.Hour)
	fresh := mustCreate(t, s, "b1", "d", time.Hour) // saving prunes
	if list := s.List(); len(list) != 1 || list[0].ID != fresh.ID {
		t.Fatalf("invites expired a week ago are still listed: %+v", list)
	}
}

func TestInviteKeyPersisted(t *testing.T) {
	s, clock, dir := newInvites(t)
	inv := mustCreate(t, s, "b1", "x", 0)
	for _, name := range []string{KeyFileName, InvitesFileName} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %o, want 600", name, info.Mode().Perm())
		}
	}
	key, _ := os.ReadFile(filepath.Join(dir, KeyFileName))
	if len(key) != 32 {
		t.Fatalf("key of %d bytes", len(key))
	}
	os.Chmod(filepath.Join(dir, KeyFileName), 0o644)
	s = openTestInvites(t, dir, clock)
	if _, err := s.Check(inv.Token, "b1"); err != nil {
		t.Fatalf("token after reopening: %v", err)
	}
	again, _ := os.ReadFile(filepath.Join(dir, KeyFileName))
	if string(again) != string(key) {
		t.Fatal("the key changed on reopening")
	}
	if info, _ := os.Stat(filepath.Join(dir, KeyFileName)); info.Mode().Perm() != 0o600 {
		t.Fatalf("a key readable by others stays so: %o", info.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("files left behind: %v", entries)
	}
}

func TestDamagedFilesAreSetAsideAndOldLinksRefused(t *testing.T) {
	t.Run("invites", func(t *testing.T) {
		s, clock, dir := newInvites(t)
		inv := mustCreate(t, s, "b1", "x", 0)
		os.WriteFile(filepath.Join(dir, InvitesFileName), []byte(`{"invites": [`), 0o600)
		s, err := OpenInvites(dir, clock.Now)
		if err == nil || s == nil || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("open a damaged file: %v, store %v", err, s)
		}
		if _, err := s.Check(inv.Token, "b1"); !errors.Is(err, ErrRevoked) {
			t.Fatalf("a link of the lost file: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, InvitesFileName+".bad")); err != nil {
			t.Fatal("damaged file not kept aside")
		}
		mustCreate(t, s, "b1", "new", 0)
	})
	t.Run("key", func(t *testing.T) {
		s, clock, dir := newInvites(t)
		inv := mustCreate(t, s, "b1", "x", 0)
		os.WriteFile(filepath.Join(dir, KeyFileName), []byte("short"), 0o600)
		s, err := OpenInvites(dir, clock.Now)
		if err == nil || s == nil {
			t.Fatalf("open with a damaged key: %v", err)
		}
		if _, err := s.Check(inv.Token, "b1"); !errors.Is(err, ErrBadToken) {
			t.Fatalf("a link signed with the lost key: %v", err)
		}
		if relisted := s.List()[0]; relisted.ID != inv.ID || relisted.Token == inv.Token {
			t.Fatalf("the invite is not listed with a new link: %+v", relisted)
		}
		if _, err := s.Check(s.List()[0].Token, "b1"); err != nil {
			t.Fatalf("the new link: %v", err)
		}
	})
}

// flipBit flips one bit of one of the token's two decoded parts and
// encodes it again, so the result is well formed but altered.
func flipBit(token string, part, bit int) string {
	parts := strings.Split(token, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[part])
	b[bit/8] ^= 1 << (bit % 8)
	parts[part] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

func TestForgedTokensAreRefused(t *testing.T) {
	s, _, _ := newInvites(t)
	inv := mustCreate(t, s, "b1", "x", 0)
	for part, bits := range []int{payloadBytes * 8, macBytes * 8} {
		for bit := range bits {
			forged := flipBit(inv.Token, part, bit)
			if _, err := s.Check(forged, "b1"); !errors.Is(err, ErrBadToken) {
				t.Fatalf("part %d bit %d flipped: %v", part, bit, err)
			}
		}
	}
}

// TestNoUnauthorizedAccess tries every way in that must fail and counts
// the ones that got through: there must be none.
func TestNoUnauthorizedAccess(t *testing.T) {
	s, clock, dir := newInvites(t)
	valid := mustCreate(t, s, "b1", "valid", 2*time.Hour)
	expired := mustCreate(t, s, "b1", "expired", time.Hour)
	revoked := mustCreate(t, s, "b1", "revoked", 2*time.Hour)
	other := mustCreate(t, s, "b2", "other broadcast", 2*time.Hour)
	s.Revoke(revoked.ID)
	foreign := mustCreate(t, openTestInvites(t, t.TempDir(), clock), "b1", "another box's key", 2*time.Hour)
	clock.Advance(90 * time.Minute)
	s = openTestInvites(t, dir, clock) // what holds after a restart

	payload, sig, _ := strings.Cut(valid.Token, ".")
	_, otherSig, _ := strings.Cut(other.Token, ".")
	otherPayload, _, _ := strings.Cut(other.Token, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	version2 := append([]byte{2}, raw[1:]...)
	lastChar := func(s string, c byte) string { return s[:len(s)-1] + string(c) }

	tests := []struct {
		name, token, broadcast string
		want                   error
	}{
		{"valid", valid.Token, "b1", nil},
		{"no token", "", "b1", ErrNoToken},
		{"expired", expired.Token, "b1", ErrExpired},
		{"revoked", revoked.Token, "b1", ErrRevoked},
		{"other broadcast's", other.Token, "b1", ErrOtherBroadcast},
		{"valid token, other broadcast", valid.Token, "b2", ErrOtherBroadcast},
		{"valid token, no broadcast", valid.Token, "", ErrOtherBroadcast},
		{"another box's key", foreign.Token, "b1", ErrBadToken},
		{"signature of another invite", payload + "." + otherSig, "b1", ErrBadToken},
		{"payload of another invite", otherPayload + "." + sig, "b1", ErrBadToken},
		{"signature missing", payload, "b1", ErrBadToken},
		{"signature empty", payload + ".", "b1", ErrBadToken},
		{"signature truncated", valid.Token[:len(valid.Token)-1], "b1", ErrBadToken},
		{"extra character", valid.Token + "A", "b1", ErrBadToken},
		{"two dots", payload + ".." + sig[1:], "b1", ErrBadToken},
		{"padded", payload + "." + sig[:len(sig)-1] + "=", "b1", ErrBadToken},
		{"standard base64 alphabet", "+" + valid.Token[1:], "b1", ErrBadToken},
		{"non-canonical last character", lastChar(valid.Token, valid.Token[len(valid.Token)-1]^1), "b1", ErrBadToken},
		{"newline inside", valid.Token[:10] + "\n" + valid.Token[11:], "b1", ErrBadToken},
		{"other version", base64.RawURLEncoding.EncodeToString(version2) + "." + sig, "b1", ErrBadToken},
		{"garbage", "hello", "b1", ErrBadToken},
		{"admin-looking", "Bearer " + valid.Token, "b1", ErrBadToken},
		{"very long", strings.Repeat("A", 1<<20), "b1", ErrBadToken},
		{"unicode", strings.Repeat("é", 25) + "." + sig, "b1", ErrBadToken},
	}
	granted := 0
	for _, tc := range tests {
		inv, err := s.Check(tc.token, tc.broadcast)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if err == nil {
			if tc.want != nil {
				t.Errorf("%s: UNAUTHORIZED ACCESS as %+v", tc.name, inv)
			}
			granted++
		}
	}
	if unauthorized := granted - 1; unauthorized != 0 {
		t.Fatalf("%d unauthorized accesses", unauthorized)
	}
	t.Logf("%d attempts, 1 valid admitted, 0 unauthorized accesses", len(tests))
}

func FuzzCheck(f *testing.F) {
	s, clock, _ := newInvites(f)
	valid := mustCreate(f, s, "b1", "valid", time.Hour)
	other := mustCreate(f, s, "b2", "other", time.Hour)
	revoked := mustCreate(f, s, "b1", "revoked", time.Hour)
	s.Revoke(revoked.ID)
	clock.Advance(time.Minute)
	minted := map[string]bool{valid.Token: true, other.Token: true}
	for _, seed := range []string{
		valid.Token, other.Token, revoked.Token, "", ".", "..", "a.b", valid.Token + "=",
		flipBit(valid.Token, 0, 3), flipBit(valid.Token, 1, 100), strings.Repeat("A", 28) + "." + strings.Repeat("A", 22),
		"\x00", "é.é", valid.Token[:28],
	} {
		f.Add(seed, "b1")
	}
	f.Fuzz(func(t *testing.T, token, broadcast string) {
		inv, err := s.Check(token, broadcast)
		if err == nil {
			// Only tokens this store made open anything, each only its own
			// broadcast.
			if !minted[token] || inv.Token != token || inv.BroadcastID != broadcast {
				t.Fatalf("token %q admitted to %q as %+v", token, broadcast, inv)
			}
			return
		}
		for _, known := range []error{ErrNoToken, ErrBadToken, ErrExpired, ErrRevoked, ErrOtherBroadcast} {
			if errors.Is(err, known) {
				return
			}
		}
		t.Fatalf("unexpected error %v", err)
	})
}
