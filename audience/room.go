// Package audience is what viewers do besides watching: the live chat of
// the current broadcast (comments, hearts, moderation) in Room, and the
// signed, expiring invite links of private broadcasts in Invites. It knows
// no transport: the web package carries its events over a WebSocket.
//
// Viewers are known by the random viewer id their page keeps, and, in a
// private broadcast, by the invite that let them in; rate limits and blocks
// apply to both, never to an IP address (a venue is one NAT).
package audience

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Options configure a Room. The zero value of each field means its
// default; a negative interval or History means none.
type Options struct {
	// MaxCommentRunes is the longest comment, in characters after
	// cleaning; default 280.
	MaxCommentRunes int
	// CommentInterval allows one comment per viewer (and per invite) this
	// often; default 2 s, negative: no limit.
	CommentInterval time.Duration
	// HeartInterval allows one heart per viewer (and per invite) this
	// often; extra hearts are refused, not queued. Default 250 ms,
	// negative: no limit.
	HeartInterval time.Duration
	// History is how many recent comments are kept for joining viewers;
	// default 50, negative: none.
	History int
	// SubscriberQueue is how many events wait for a subscriber; one whose
	// queue is full is dropped (its channel closed) so that one slow socket
	// never holds up the others. Default 256.
	SubscriberQueue int
	// HeartCoalesce spaces heart events: the first heart after a quiet
	// spell is sent at once, further ones within this time are summed into
	// one event at its end. Default 200 ms, negative: one event per heart.
	HeartCoalesce time.Duration
	// BroadcasterName is the name on the crew's comments; default
	// "Broadcaster".
	BroadcasterName string
	// Now is a monotonic clock for the rate limits; default: time since
	// NewRoom. Tests inject a fake.
	Now func() time.Duration
	// WallNow stamps comments for display only; default time.Now.
	WallNow func() time.Time
}

func (o Options) withDefaults() Options {
	positive := func(v *time.Duration, def time.Duration) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = 0
		}
	}
	if o.MaxCommentRunes <= 0 {
		o.MaxCommentRunes = 280
	}
	positive(&o.CommentInterval, 2*time.Second)
	positive(&o.HeartInterval, 250*time.Millisecond)
	positive(&o.HeartCoalesce, 200*time.Millisecond)
	switch {
	case o.History == 0:
		o.History = 50
	case o.History < 0:
		o.History = 0
	}
	if o.SubscriberQueue <= 0 {
		o.SubscriberQueue = 256
	}
	if o.BroadcasterName == "" {
		o.BroadcasterName = "Broadcaster"
	}
	if o.Now == nil {
		start := time.Now()
		o.Now = func() time.Duration { return time.Since(start) }
	}
	if o.WallNow == nil {
		o.WallNow = time.Now
	}
	return o
}

// Viewer is who posts or hearts.
type Viewer struct {
	// ID is the page's random viewer id: required, at most
	// MaxViewerIDBytes.
	ID string
	// Name is the display name; cleaned like a comment, cut to
	// MaxNameRunes, DefaultName when empty.
	Name string
	// InviteID is the invite that admitted the viewer to a private
	// broadcast (from Invites.Check); empty otherwise.
	InviteID string
}

// The errors of a Room. Rate limits are a *RateLimitError, which matches
// ErrRateLimited with errors.Is.
var (
	ErrCommentsOff   = errors.New("audience: comments are off")
	ErrEmpty         = errors.New("audience: the comment is empty")
	ErrTooLong       = errors.New("audience: the comment is too long")
	ErrRateLimited   = errors.New("audience: too fast")
	ErrBlocked       = errors.New("audience: blocked for the rest of this broadcast")
	ErrNoSuchComment = errors.New("audience: no such comment")
	ErrNoViewer      = errors.New("audience: a viewer id is required")
	ErrClosed        = errors.New("audience: the room is closed")
)

// RateLimitError refuses a comment or heart that came too soon after the
// sender's previous one.
type RateLimitError struct {
	// RetryAfter is how long until the sender may try again.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	// Whole tenths of a second, rounded up: "wait 0s" would be a lie.
	wait := (e.RetryAfter + 100*time.Millisecond - 1).Truncate(100 * time.Millisecond)
	return fmt.Sprintf("audience: too fast, try again in %s", wait)
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// sender is the rate-limit state of one viewer id or one invite.
type sender struct {
	nextComment time.Duration // earliest time of the next comment
	nextHeart   time.Duration
	inviteID    string // a viewer's invite when it last posted or hearted
}

// sweepAtLeast is the number of tracked senders below which idle ones are
// not swept; above it, a sweep runs whenever the number doubles.
const sweepAtLeast = 4096

// Room is the live chat of the current broadcast: comments, hearts and
// moderation, fanned out in one order to every subscriber. Its methods are
// safe for concurrent use. Make it with NewRoom; Close ends it.
type Room struct {
	opt      Options
	idPrefix string // random per Room: comment ids stay unique across restarts

	mu              sync.Mutex
	closed          bool
	broadcastID     string
	commentsEnabled bool
	seq             uint64 // next comment number; never reset
	firstSeq        uint64 // first comment number of this broadcast
	history         []Comment
	removed         map[uint64]bool // removed this broadcast, beyond history
	hearts          uint64
	viewers         map[string]*sender
	invites         map[string]*sender
	sweepAt         int
	blockedViewers  map[string]bool
	blockedInvites  map[string]bool
	subs            []*Subscription

	// Heart coalescing: a timer is pending for HeartCoalesce after each
	// heart event; hearts meanwhile set heartDirty and go out when it fires.
	heartPending bool
	heartDirty   bool
	heartTimer   *time.Timer
	timers       sync.WaitGroup // running timer callbacks, for Close
}

// NewRoom makes an open room with comments on.
func NewRoom(opt Options) *Room {
	var b [4]byte
	rand.Read(b[:])
	r := &Room{
		opt:             opt.withDefaults(),
		idPrefix:        "c-" + hex.EncodeToString(b[:]) + "-",
		commentsEnabled: true,
	}
	r.resetLocked("")
	return r
}

func (r *Room) resetLocked(broadcastID string) {
	r.broadcastID = broadcastID
	r.firstSeq = r.seq
	r.history = nil
	r.removed = map[uint64]bool{}
	r.hearts = 0
	r.heartDirty = false
	r.viewers = map[string]*sender{}
	r.invites = map[string]*sender{}
	r.sweepAt = sweepAtLeast
	r.blockedViewers = map[string]bool{}
	r.blockedInvites = map[string]bool{}
}

// Reset starts the room of a new broadcast: history, heart count, blocks
// and rate limits are cleared, and every subscriber gets an EventReset so
// that pages clear what they show. Whether comments are on is kept, and so
// are the subscribers. Reset with the current broadcast id does nothing, so
// that a repeated go-live cannot wipe the chat of a running broadcast.
func (r *Room) Reset(broadcastID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || broadcastID == r.broadcastID {
		return
	}
	r.resetLocked(broadcastID)
	r.emitLocked(Event{Type: EventReset, BroadcastID: broadcastID})
}

// BroadcastID is the broadcast the room is for: the one of the last Reset.
func (r *Room) BroadcastID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.broadcastID
}

// Post adds a viewer's comment and sends it to every subscriber.
//
// The text is cleaned: invalid UTF-8 becomes U+FFFD, control characters are
// removed except newlines (at most one empty line in a row), tabs become
// spaces, bidirectional overrides are removed, and the ends are trimmed.
// It is not HTML-escaped. The refusals, in this order: ErrNoViewer,
// ErrClosed, ErrBlocked, ErrCommentsOff, ErrEmpty, ErrTooLong (the message
// gives the limit), and a *RateLimitError (errors.Is ErrRateLimited) when
// the viewer, or anyone with the same invite, commented less than
// CommentInterval ago. A refused comment does not count against the limit.
func (r *Room) Post(v Viewer, text string) (Comment, error) {
	if err := checkViewerID(v.ID); err != nil {
		return Comment{}, err
	}
	name := cleanName(v.Name)
	text, textErr := r.cleanComment(text)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return Comment{}, ErrClosed
	}
	if r.blockedLocked(v) {
		return Comment{}, ErrBlocked
	}
	now := r.opt.Now()
	viewer, invite := r.sendersLocked(v, now)
	if !r.commentsEnabled {
		return Comment{}, ErrCommentsOff
	}
	if textErr != nil {
		return Comment{}, textErr
	}
	wait := viewer.nextComment - now
	if invite != nil {
		wait = max(wait, invite.nextComment-now)
	}
	if wait > 0 {
		return Comment{}, &RateLimitError{RetryAfter: wait}
	}
	viewer.nextComment = now + r.opt.CommentInterval
	if invite != nil {
		invite.nextComment = now + r.opt.CommentInterval
	}
	return r.addLocked(Comment{ViewerID: v.ID, Name: name, Text: text, inviteID: v.InviteID}), nil
}

// PostAsBroadcaster adds a comment of the crew, marked Broadcaster and
// named Options.BroadcasterName. It is not rate limited and goes through
// when comments are off; it is cleaned and checked for length like a
// viewer's.
func (r *Room) PostAsBroadcaster(text string) (Comment, error) {
	text, err := r.cleanComment(text)
	if err != nil {
		return Comment{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return Comment{}, ErrClosed
	}
	return r.addLocked(Comment{Name: r.opt.BroadcasterName, Text: text, Broadcaster: true}), nil
}

func (r *Room) cleanComment(text string) (string, error) {
	text = cleanText(text, true)
	if text == "" {
		return "", ErrEmpty
	}
	if n := utf8.RuneCountInString(text); n > r.opt.MaxCommentRunes {
		return "", fmt.Errorf("%w: %d characters, at most %d", ErrTooLong, n, r.opt.MaxCommentRunes)
	}
	return text, nil
}

func checkViewerID(id string) error {
	if id == "" {
		return ErrNoViewer
	}
	if len(id) > MaxViewerIDBytes {
		return fmt.Errorf("%w: at most %d bytes, not %d", ErrNoViewer, MaxViewerIDBytes, len(id))
	}
	return nil
}

// addLocked numbers, stamps, keeps and sends c.
func (r *Room) addLocked(c Comment) Comment {
	c.ID = r.idPrefix + strconv.FormatUint(r.seq, 10)
	r.seq++
	c.Time = r.opt.WallNow()
	if r.opt.History > 0 {
		if len(r.history) == r.opt.History {
			copy(r.history, r.history[1:])
			r.history = r.history[:len(r.history)-1]
		}
		r.history = append(r.history, c)
	}
	r.emitLocked(CommentEvent(c))
	return c
}

// sendersLocked returns the rate-limit state of v and of its invite (nil
// without one), made on first sight, and notes v's invite for Block.
func (r *Room) sendersLocked(v Viewer, now time.Duration) (viewer, invite *sender) {
	viewer = r.viewers[v.ID]
	if viewer == nil {
		if len(r.viewers) >= r.sweepAt {
			r.sweepLocked(now)
		}
		viewer = &sender{}
		r.viewers[v.ID] = viewer
	}
	if v.InviteID == "" {
		return viewer, nil
	}
	viewer.inviteID = v.InviteID
	invite = r.invites[v.InviteID]
	if invite == nil {
		invite = &sender{}
		r.invites[v.InviteID] = invite
	}
	return viewer, invite
}

// sweepLocked forgets senders whose limits have run out, so that a flood of
// made-up viewer ids costs memory only for as long as their limits last.
// A swept viewer's invite is then found for Block in the history only.
func (r *Room) sweepLocked(now time.Duration) {
	for _, m := range []map[string]*sender{r.viewers, r.invites} {
		for id, s := range m {
			if s.nextComment <= now && s.nextHeart <= now {
				delete(m, id)
			}
		}
	}
	r.sweepAt = max(sweepAtLeast, 2*len(r.viewers))
}

// Remove takes a comment of this broadcast away from the history and sends
// comment_removed to every subscriber. A comment that has already left the
// history (pages may still show it) can be removed too. ErrNoSuchComment
// for ids of other broadcasts, unknown ids and comments already removed.
func (r *Room) Remove(commentID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	notFound := fmt.Errorf("%w %q", ErrNoSuchComment, commentID)
	if r.closed {
		return ErrClosed
	}
	digits, ok := strings.CutPrefix(commentID, r.idPrefix)
	if !ok {
		return notFound
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != digits || n < r.firstSeq || n >= r.seq || r.removed[n] {
		return notFound
	}
	r.removed[n] = true
	for i, c := range r.history {
		if c.ID == commentID {
			r.history = append(r.history[:i], r.history[i+1:]...)
			break
		}
	}
	r.emitLocked(Event{Type: EventCommentRemoved, CommentID: commentID})
	return nil
}

// Block refuses the viewer's comments and hearts for the rest of the
// broadcast, and those of the invite it last posted or hearted with, so
// that a new viewer id on the same invite link does not get around it.
// It removes nothing: the moderator removes the comments that must go
// (Remove), since earlier ones may be harmless and every removal shows.
// A viewer id not seen yet is blocked all the same (a block must never
// fail for want of bookkeeping); only an empty id is refused (ErrNoViewer).
func (r *Room) Block(viewerID string) error {
	if viewerID == "" {
		return ErrNoViewer
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blockedViewers[viewerID] = true
	invite := ""
	if s := r.viewers[viewerID]; s != nil {
		invite = s.inviteID
	}
	for i := len(r.history) - 1; i >= 0 && invite == ""; i-- {
		if c := r.history[i]; c.ViewerID == viewerID {
			invite = c.inviteID
		}
	}
	if invite != "" {
		r.blockedInvites[invite] = true
	}
	return nil
}

// Blocked tells whether v's viewer id or invite is blocked.
func (r *Room) Blocked(v Viewer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blockedLocked(v)
}

func (r *Room) blockedLocked(v Viewer) bool {
	return r.blockedViewers[v.ID] || (v.InviteID != "" && r.blockedInvites[v.InviteID])
}

// SetCommentsEnabled turns viewers' comments on or off and, when that is a
// change, sends comments_enabled to every subscriber.
func (r *Room) SetCommentsEnabled(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.commentsEnabled == on {
		return
	}
	r.commentsEnabled = on
	r.emitLocked(Event{Type: EventCommentsEnabled, Enabled: on})
}

// CommentsEnabled tells whether viewers may comment; true at first.
func (r *Room) CommentsEnabled() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.commentsEnabled
}

// Heart counts a viewer's heart and returns the total of this broadcast.
// Hearts are allowed when comments are off. Refusals: ErrNoViewer,
// ErrClosed, ErrBlocked, and a *RateLimitError when the viewer (or its
// invite) sent one less than HeartInterval ago.
//
// Heart events are coalesced (Options.HeartCoalesce): the first heart after
// a quiet spell goes out at once, the ones that follow within the interval
// as one event with the total at its end, so a room full of tapping
// thumbs sends a few events a second, not one per tap.
func (r *Room) Heart(v Viewer) (total uint64, err error) {
	if err := checkViewerID(v.ID); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, ErrClosed
	}
	if r.blockedLocked(v) {
		return 0, ErrBlocked
	}
	now := r.opt.Now()
	viewer, invite := r.sendersLocked(v, now)
	wait := viewer.nextHeart - now
	if invite != nil {
		wait = max(wait, invite.nextHeart-now)
	}
	if wait > 0 {
		return 0, &RateLimitError{RetryAfter: wait}
	}
	viewer.nextHeart = now + r.opt.HeartInterval
	if invite != nil {
		invite.nextHeart = now + r.opt.HeartInterval
	}
	r.hearts++
	switch {
	case r.opt.HeartCoalesce == 0:
		r.emitLocked(Event{Type: EventHeart, Count: r.hearts})
	case r.heartPending:
		r.heartDirty = true
	default:
		r.emitLocked(Event{Type: EventHeart, Count: r.hearts})
		r.startHeartTimerLocked()
	}
	return r.hearts, nil
}

func (r *Room) startHeartTimerLocked() {
	r.heartPending = true
	r.timers.Add(1)
	r.heartTimer = time.AfterFunc(r.opt.HeartCoalesce, r.flushHearts)
}

// flushHearts ends a coalescing interval: the hearts that came during it go
// out as one event and a new interval starts; a quiet one ends coalescing.
func (r *Room) flushHearts() {
	defer r.timers.Done()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if !r.heartDirty {
		r.heartPending = false
		return
	}
	r.heartDirty = false
	r.emitLocked(Event{Type: EventHeart, Count: r.hearts})
	r.startHeartTimerLocked()
}

// Hearts is the number of hearts of this broadcast.
func (r *Room) Hearts() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hearts
}

// History returns copies of the recent comments, oldest first.
func (r *Room) History() []Comment {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Comment(nil), r.history...)
}

// Snapshot is what a joining page needs to show the room as it is.
type Snapshot struct {
	BroadcastID     string
	CommentsEnabled bool
	Hearts          uint64
	// Comments are the history, oldest first.
	Comments []Comment
}

// Events are the snapshot as events, to send before the live ones:
// comments_enabled, heart, then the comments oldest first.
func (s Snapshot) Events() []Event {
	events := make([]Event, 0, 2+len(s.Comments))
	events = append(events, Event{Type: EventCommentsEnabled, Enabled: s.CommentsEnabled},
		Event{Type: EventHeart, Count: s.Hearts})
	for _, c := range s.Comments {
		events = append(events, CommentEvent(c))
	}
	return events
}

// Subscription receives a Room's events. Its channel is closed when the
// subscription is closed, when it is dropped for falling SubscriberQueue
// events behind (Dropped tells), or when the Room closes.
type Subscription struct {
	room    *Room
	events  chan Event
	closed  bool // guarded by room.mu
	dropped atomic.Bool
}

// Subscribe starts receiving every event from now on, in the order every
// other subscriber receives them. It sends no snapshot: see
// SubscribeSnapshot. After Close the channel is already closed.
func (r *Room) Subscribe() *Subscription {
	s, _ := r.subscribe(false)
	return s
}

// SubscribeSnapshot is Subscribe together with the room as it stands at
// that instant, so that a joining page misses nothing and sees nothing
// twice, unlike History followed by Subscribe.
func (r *Room) SubscribeSnapshot() (*Subscription, Snapshot) {
	return r.subscribe(true)
}

func (r *Room) subscribe(snapshot bool) (*Subscription, Snapshot) {
	s := &Subscription{room: r, events: make(chan Event, r.opt.SubscriberQueue)}
	r.mu.Lock()
	defer r.mu.Unlock()
	var snap Snapshot
	if snapshot {
		snap = Snapshot{BroadcastID: r.broadcastID, CommentsEnabled: r.commentsEnabled, Hearts: r.hearts,
			Comments: append([]Comment(nil), r.history...)}
	}
	if r.closed {
		s.closed = true
		close(s.events)
		return s, snap
	}
	r.subs = append(r.subs, s)
	return s, snap
}

// Events is the subscription's channel of events.
func (s *Subscription) Events() <-chan Event { return s.events }

// Dropped tells whether the subscription was ended for falling behind (the
// page should reconnect and start from a snapshot).
func (s *Subscription) Dropped() bool { return s.dropped.Load() }

// Close ends the subscription and closes its channel; closing twice, or
// after it was dropped, is fine.
func (s *Subscription) Close() {
	r := s.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.closed {
		return
	}
	for i, other := range r.subs {
		if other == s {
			r.subs = append(r.subs[:i], r.subs[i+1:]...)
			break
		}
	}
	s.closed = true
	close(s.events)
}

// emitLocked queues e for every subscriber without ever waiting: a
// subscriber whose queue is full is dropped. Since every event is queued
// under r.mu, all subscribers see the same order.
func (r *Room) emitLocked(e Event) {
	kept := r.subs[:0]
	for _, s := range r.subs {
		select {
		case s.events <- e:
			kept = append(kept, s)
		default:
			s.dropped.Store(true)
			s.closed = true
			close(s.events)
		}
	}
	clear(r.subs[len(kept):])
	r.subs = kept
}

// Close ends the room: every subscription's channel is closed, and Post,
// Heart and the like answer ErrClosed. It returns once the heart timer is
// gone. Closing twice is fine.
func (r *Room) Close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		for _, s := range r.subs {
			s.closed = true
			close(s.events)
		}
		r.subs = nil
		if r.heartTimer != nil && r.heartTimer.Stop() {
			r.timers.Done()
		}
	}
	r.mu.Unlock()
	r.timers.Wait()
}
