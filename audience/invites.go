package audience

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/onair/onair/internal/atomicfile"
)

// Files of the invite store in its directory.
const (
	// KeyFileName holds the 32-byte secret that signs invite tokens.
	KeyFileName = "invite.key"
	// InvitesFileName holds the invites (JSON), revoked ones included.
	InvitesFileName = "invites.json"
)

// Bounds of invites.
const (
	DefaultInviteTTL   = 24 * time.Hour
	MinInviteTTL       = time.Minute
	MaxInviteTTL       = 30 * 24 * time.Hour
	MaxInviteNameRunes = 60
	// MaxInvites bounds the invites kept (revoked and recently expired
	// ones count until they are pruned).
	MaxInvites = 10000
	// pruneAfter is how long an expired invite stays listed.
	pruneAfter = 7 * 24 * time.Hour
)

// The errors of Invites. Check's: ErrNoToken means the caller answers 401;
// every other refusal means 403.
var (
	ErrNoToken        = errors.New("audience: no invite token")
	ErrBadToken       = errors.New("audience: the invite token is not valid")
	ErrExpired        = errors.New("audience: the invite has expired")
	ErrRevoked        = errors.New("audience: the invite was revoked")
	ErrOtherBroadcast = errors.New("audience: the invite is for another broadcast")
	ErrNoSuchInvite   = errors.New("audience: no such invite")
	ErrBadInvite      = errors.New("audience: invalid invite")
)

// Invite lets one person (or one group, sharing the link) watch a private
// broadcast until it expires or is revoked.
type Invite struct {
	// ID names the invite: 16 hex digits.
	ID   string
	Name string
	// BroadcastID is the only broadcast the invite opens.
	BroadcastID string
	// Created and Expires are wall-clock times (see Invites).
	Created time.Time
	Expires time.Time
	// Token goes into the link: <public_url>/?t=<token>.
	Token   string
	Revoked bool
}

// record is an invite as stored; its token is not stored but derived.
type record struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	BroadcastID string    `json:"broadcast_id"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires"`
	Revoked     bool      `json:"revoked,omitempty"`
}

type invitesFile struct {
	// ClockFloor is the latest wall-clock time the store has seen; see
	// Invites for why.
	ClockFloor time.Time `json:"clock_floor"`
	Invites    []record  `json:"invites"`
}

// Invites is the store of invite links: it makes them, lists them, revokes
// them and checks the tokens viewers bring. Its methods are safe for
// concurrent use.
//
// # Token format
//
// A token is two unpadded base64url parts joined by a dot, 51 characters in
// all (compact for a link and a QR code):
//
//	base64url(payload) "." base64url(HMAC-SHA256(key, payload)[:16])
//	payload = version (1 byte, 1) | invite id (8 bytes) |
//	          expiry (4 bytes, big-endian Unix seconds) |
//	          broadcast tag (8 bytes: SHA-256(broadcast id)[:8])
//
// The key is 32 random bytes made once in the store's directory. Check
// accepts only the canonical encoding, compares the MAC in constant time,
// and only then reads the payload; the invite must also still be in the
// store and not revoked, so a lost invites file locks every link out
// rather than letting revoked ones back in.
//
// # Clock
//
// Expiry is judged on the wall clock given to OpenInvites, which on a box
// without a real-time clock may start in 1970 before the network sets it.
// To keep that from reviving expired links, the store never takes the time
// to be earlier than the latest time it has seen when making an invite
// (ClockFloor, kept in the invites file).
type Invites struct {
	dir string
	now func() time.Time
	key []byte

	mu         sync.RWMutex
	records    []record // oldest first
	byID       map[string]int
	clockFloor time.Time
}

// OpenInvites opens the invite store in dir (made if missing, 0700): its
// key, made on first use (KeyFileName, mode 0600, written atomically), and
// its invites (InvitesFileName). now is the wall clock; nil means time.Now.
//
// A damaged invites file or key is set aside (renamed .bad) and the store
// starts afresh, so the box still starts: the store and an error saying so
// are both returned. Every link made before is then refused (fail closed).
func OpenInvites(dir string, now func() time.Time) (*Invites, error) {
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("invites directory: %w", err)
	}
	s := &Invites{dir: dir, now: now, byID: map[string]int{}}
	var damage []error
	key, err := loadKey(filepath.Join(dir, KeyFileName))
	var damaged *damagedError
	switch {
	case errors.As(err, &damaged):
		damage = append(damage, err)
	case err != nil:
		return nil, err
	}
	s.key = key
	err = s.load()
	switch {
	case errors.As(err, &damaged):
		damage = append(damage, err)
	case err != nil:
		return nil, err
	}
	return s, errors.Join(damage...)
}

// damagedError reports a file that was set aside.
type damagedError struct {
	path, aside string
	err         error
}

func (e *damagedError) Error() string {
	return fmt.Sprintf("%s was damaged and is kept as %s; every invite link made before is refused: %v", e.path, e.aside, e.err)
}

func (e *damagedError) Unwrap() error { return e.err }

func setAside(path string, cause error) error {
	aside := path + ".bad"
	if err := os.Rename(path, aside); err != nil {
		return fmt.Errorf("%s is damaged (%v) and cannot be set aside: %w", path, cause, err)
	}
	return &damagedError{path: path, aside: aside, err: cause}
}

const keyBytes = 32

// loadKey reads the signing key, or makes it when there is none. A key
// readable by others is made private again.
func loadKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	var damage error
	switch {
	case err == nil && len(key) == keyBytes:
		if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, fmt.Errorf("make invite key private: %w", err)
			}
		}
		return key, nil
	case err == nil:
		if damage = setAside(path, fmt.Errorf("%d bytes, want %d", len(key), keyBytes)); !isDamaged(damage) {
			return nil, damage
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read invite key: %w", err)
	}
	key = make([]byte, keyBytes)
	rand.Read(key)
	if err := atomicfile.Write(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("save invite key: %w", err)
	}
	return key, damage
}

func isDamaged(err error) bool {
	var d *damagedError
	return errors.As(err, &d)
}

func (s *Invites) path() string { return filepath.Join(s.dir, InvitesFileName) }

func (s *Invites) load() error {
	data, err := os.ReadFile(s.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read invites: %w", err)
	}
	var f invitesFile
	if err := json.Unmarshal(data, &f); err != nil {
		return setAside(s.path(), err)
	}
	for _, rec := range f.Invites {
		if _, err := decodeInviteID(rec.ID); err != nil {
			return setAside(s.path(), fmt.Errorf("invite id %q: %w", rec.ID, err))
		}
		if _, dup := s.byID[rec.ID]; dup {
			return setAside(s.path(), fmt.Errorf("invite %s twice", rec.ID))
		}
		s.byID[rec.ID] = len(s.records)
		s.records = append(s.records, rec)
	}
	s.clockFloor = f.ClockFloor
	return nil
}

// saveLocked writes records durably; s.mu is held for writing.
func (s *Invites) saveLocked(records []record, floor time.Time) error {
	data, err := json.MarshalIndent(invitesFile{ClockFloor: floor, Invites: records}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode invites: %w", err)
	}
	if err := atomicfile.Write(s.path(), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save invites: %w", err)
	}
	return nil
}

func (s *Invites) setLocked(records []record, floor time.Time) {
	s.records = records
	s.clockFloor = floor
	s.byID = make(map[string]int, len(records))
	for i, rec := range records {
		s.byID[rec.ID] = i
	}
}

// nowLocked is the wall clock, never earlier than the floor.
func (s *Invites) nowLocked() time.Time {
	now := s.now()
	if now.Before(s.clockFloor) {
		return s.clockFloor
	}
	return now
}

// Create makes an invite to broadcastID that lasts ttl (DefaultInviteTTL
// when 0, else MinInviteTTL to MaxInviteTTL) and saves it durably before
// returning. The name (for the crew's list) is cleaned like a display name
// and cut to MaxInviteNameRunes; it may be empty.
func (s *Invites) Create(broadcastID, name string, ttl time.Duration) (Invite, error) {
	if ttl == 0 {
		ttl = DefaultInviteTTL
	}
	if ttl < MinInviteTTL || ttl > MaxInviteTTL {
		return Invite{}, fmt.Errorf("%w: lifetime %s, want %s to %s", ErrBadInvite,
			shortDuration(ttl), shortDuration(MinInviteTTL), shortDuration(MaxInviteTTL))
	}
	if broadcastID == "" {
		return Invite{}, fmt.Errorf("%w: no broadcast given", ErrBadInvite)
	}
	name = strings.Join(strings.Fields(cleanText(name, false)), " ")
	if utf8.RuneCountInString(name) > MaxInviteNameRunes {
		name = strings.TrimSpace(string([]rune(name)[:MaxInviteNameRunes]))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	expires := now.Add(ttl).Truncate(time.Second)
	if now.Unix() < 0 || expires.Unix() > math.MaxUint32 {
		return Invite{}, fmt.Errorf("%w: the clock says %s, outside what a token can carry", ErrBadInvite, now.UTC().Format(time.RFC3339))
	}
	records := s.prunedLocked(now)
	if len(records) >= MaxInvites {
		return Invite{}, fmt.Errorf("%w: already %d invites; revoke some or let them expire", ErrBadInvite, len(records))
	}
	var id string
	for {
		var b [inviteIDBytes]byte
		rand.Read(b[:])
		if id = hex.EncodeToString(b[:]); s.byIDFree(id) {
			break
		}
	}
	rec := record{ID: id, Name: name, BroadcastID: broadcastID, Created: now.UTC(), Expires: expires.UTC()}
	records = append(records, rec)
	floor := now
	if err := s.saveLocked(records, floor); err != nil {
		return Invite{}, err
	}
	s.setLocked(records, floor)
	return s.inviteOf(rec), nil
}

func (s *Invites) byIDFree(id string) bool {
	_, taken := s.byID[id]
	return !taken
}

// prunedLocked is a copy of the records without those expired more than
// pruneAfter ago; their tokens are refused as expired all the same.
func (s *Invites) prunedLocked(now time.Time) []record {
	kept := make([]record, 0, len(s.records)+1)
	for _, rec := range s.records {
		if now.Sub(rec.Expires) <= pruneAfter {
			kept = append(kept, rec)
		}
	}
	return kept
}

// shortDuration writes d as people write it: "1m", "720h", "1h30m".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// List returns every invite, the newest first, revoked and expired ones
// included (expired ones are dropped a week after they expire).
func (s *Invites) List() []Invite {
	s.mu.RLock()
	defer s.mu.RUnlock()
	list := make([]Invite, 0, len(s.records))
	for _, rec := range slices.Backward(s.records) {
		list = append(list, s.inviteOf(rec))
	}
	return list
}

// Revoke withdraws an invite for good (ErrNoSuchInvite if there is none;
// revoking twice is fine). The revocation takes effect at once even when
// saving it fails; the error then says it may not survive a restart.
func (s *Invites) Revoke(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.byID[id]
	if !ok {
		return fmt.Errorf("%w %q", ErrNoSuchInvite, id)
	}
	if s.records[i].Revoked {
		return nil
	}
	s.records[i].Revoked = true
	if err := s.saveLocked(s.records, s.clockFloor); err != nil {
		return fmt.Errorf("invite %s is revoked until the next restart: %w", id, err)
	}
	return nil
}

// Check tells whether token opens broadcastID, returning its invite. The
// refusals, in this order: ErrNoToken for an empty token (answer 401);
// ErrBadToken for anything malformed or not signed by this store's key,
// ErrOtherBroadcast, ErrExpired, and ErrRevoked (also for an invite no
// longer in the store), all of which mean 403. Check never panics, whatever
// the token.
func (s *Invites) Check(token, broadcastID string) (Invite, error) {
	if token == "" {
		return Invite{}, ErrNoToken
	}
	p, ok := s.verify(token)
	if !ok {
		return Invite{}, ErrBadToken
	}
	if p.tag != broadcastTag(broadcastID) {
		return Invite{}, ErrOtherBroadcast
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if now := s.nowLocked(); !now.Before(p.expires) {
		return Invite{}, fmt.Errorf("%w (%s)", ErrExpired, p.expires.UTC().Format(time.RFC3339))
	}
	i, ok := s.byID[p.id]
	if !ok || s.records[i].Revoked {
		return Invite{}, ErrRevoked
	}
	inv := s.inviteOf(s.records[i])
	inv.Token = token
	return inv, nil
}

func (s *Invites) inviteOf(rec record) Invite {
	id, _ := decodeInviteID(rec.ID) // checked on load and on create
	return Invite{ID: rec.ID, Name: rec.Name, BroadcastID: rec.BroadcastID, Created: rec.Created,
		Expires: rec.Expires, Revoked: rec.Revoked,
		Token: s.sign(payload{id: rec.ID, expires: rec.Expires, tag: broadcastTag(rec.BroadcastID)}, id)}
}

// The token's layout; see Invites.
const (
	tokenVersion  = 1
	inviteIDBytes = 8
	tagBytes      = 8
	payloadBytes  = 1 + inviteIDBytes + 4 + tagBytes
	macBytes      = 16
)

var (
	b64              = base64.RawURLEncoding.Strict()
	payloadChars     = b64.EncodedLen(payloadBytes)
	macChars         = b64.EncodedLen(macBytes)
	tokenChars       = payloadChars + 1 + macChars
	errInviteIDShape = errors.New("want 16 hex digits")
)

// payload is a token's signed content.
type payload struct {
	id      string // hex
	expires time.Time
	tag     [tagBytes]byte
}

func broadcastTag(broadcastID string) [tagBytes]byte {
	sum := sha256.Sum256([]byte(broadcastID))
	return [tagBytes]byte(sum[:tagBytes])
}

func decodeInviteID(id string) ([inviteIDBytes]byte, error) {
	var b [inviteIDBytes]byte
	if len(id) != 2*inviteIDBytes || strings.ToLower(id) != id {
		return b, errInviteIDShape
	}
	if _, err := hex.Decode(b[:], []byte(id)); err != nil {
		return b, errInviteIDShape
	}
	return b, nil
}

func (s *Invites) mac(data []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(data)
	return m.Sum(nil)[:macBytes]
}

func (s *Invites) sign(p payload, id [inviteIDBytes]byte) string {
	var data [payloadBytes]byte
	data[0] = tokenVersion
	copy(data[1:], id[:])
	binary.BigEndian.PutUint32(data[1+inviteIDBytes:], uint32(p.expires.Unix()))
	copy(data[1+inviteIDBytes+4:], p.tag[:])
	return b64.EncodeToString(data[:]) + "." + b64.EncodeToString(s.mac(data[:]))
}

// verify decodes a token and checks its signature before trusting any of it.
func (s *Invites) verify(token string) (payload, bool) {
	if len(token) != tokenChars || token[payloadChars] != '.' {
		return payload{}, false
	}
	var data [payloadBytes]byte
	var sig [macBytes]byte
	if n, err := b64.Decode(data[:], []byte(token[:payloadChars])); err != nil || n != payloadBytes {
		return payload{}, false
	}
	if n, err := b64.Decode(sig[:], []byte(token[payloadChars+1:])); err != nil || n != macBytes {
		return payload{}, false
	}
	if !hmac.Equal(sig[:], s.mac(data[:])) || data[0] != tokenVersion {
		return payload{}, false
	}
	p := payload{
		id:      hex.EncodeToString(data[1 : 1+inviteIDBytes]),
		expires: time.Unix(int64(binary.BigEndian.Uint32(data[1+inviteIDBytes:])), 0),
	}
	copy(p.tag[:], data[1+inviteIDBytes+4:])
	return p, true
}
