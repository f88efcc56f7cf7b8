package audience

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var wallTime = time.Date(2025, 6, 1, 18, 30, 0, 0, time.UTC)

// newTestRoom makes a room on a fake clock that the test closes.
func newTestRoom(t *testing.T, opt Options) (*Room, *fakeClock) {
	t.Helper()
	clock := &fakeClock{}
	opt.Now = clock.Now
	if opt.WallNow == nil {
		opt.WallNow = func() time.Time { return wallTime }
	}
	if opt.HeartCoalesce == 0 {
		opt.HeartCoalesce = -1 // deterministic: one event per heart
	}
	r := NewRoom(opt)
	t.Cleanup(r.Close)
	return r, clock
}

// drain collects a subscription's events until its channel closes.
func drain(s *Subscription) <-chan []Event {
	out := make(chan []Event, 1)
	go func() {
		var got []Event
		for e := range s.Events() {
			got = append(got, e)
		}
		out <- got
	}()
	return out
}

// pending returns the events queued for s without waiting.
func pending(s *Subscription) []Event {
	var got []Event
	for {
		select {
		case e, ok := <-s.Events():
			if !ok {
				return got
			}
			got = append(got, e)
		default:
			return got
		}
	}
}

func viewer(n int) Viewer {
	return Viewer{ID: fmt.Sprintf("viewer-%d", n), Name: fmt.Sprintf("Viewer %d", n)}
}

func TestFanOutSameOrderToEverySubscriber(t *testing.T) {
	const subscribers, posters, perPoster = 50, 8, 40
	r, _ := newTestRoom(t, Options{CommentInterval: -1, HeartInterval: -1, SubscriberQueue: 4096})
	var results []<-chan []Event
	for range subscribers {
		results = append(results, drain(r.Subscribe()))
	}
	var wg sync.WaitGroup
	for p := range posters {
		wg.Go(func() {
			for i := range perPoster {
				if _, err := r.Post(viewer(p), strconv.Itoa(i)); err != nil {
					t.Error(err)
				}
				if i%10 == 0 {
					if _, err := r.Heart(viewer(p)); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Go(func() {
		c, _ := r.PostAsBroadcaster("oops")
		if err := r.Remove(c.ID); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	r.Close()

	var first []Event
	for i, res := range results {
		got := <-res
		if i == 0 {
			first = got
			continue
		}
		if len(got) != len(first) {
			t.Fatalf("subscriber %d got %d events, subscriber 0 got %d", i, len(got), len(first))
		}
		for j := range got {
			if got[j] != first[j] {
				t.Fatalf("subscriber %d event %d is %+v, subscriber 0 saw %+v", i, j, got[j], first[j])
			}
		}
	}
	comments := 0
	for _, e := range first {
		if e.Type == EventComment {
			comments++
		}
	}
	if want := posters*perPoster + 1; comments != want {
		t.Fatalf("%d comments delivered, want %d", comments, want)
	}
	if want := posters*perPoster + posters*perPoster/10 + 2; len(first) != want {
		t.Fatalf("%d events, want %d", len(first), want)
	}
}

func TestEachSendersCommentsInOrder(t *testing.T) {
	const posters, perPoster = 10, 100
	r, _ := newTestRoom(t, Options{CommentInterval: -1, SubscriberQueue: posters * perPoster, History: posters * perPoster})
	result := drain(r.Subscribe())
	var wg sync.WaitGroup
	for p := range posters {
		wg.Go(func() {
			for i := range perPoster {
				if _, err := r.Post(viewer(p), strconv.Itoa(i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	history := r.History()
	r.Close()

	next := map[string]int{}
	ids := map[string]bool{}
	for _, e := range <-result {
		c := e.Comment
		if n, _ := strconv.Atoi(c.Text); n != next[c.ViewerID] {
			t.Fatalf("%s: comment %q arrived when %d was due", c.ViewerID, c.Text, next[c.ViewerID])
		}
		next[c.ViewerID]++
		if ids[c.ID] {
			t.Fatalf("comment id %s used twice", c.ID)
		}
		ids[c.ID] = true
	}
	for p := range posters {
		if next[viewer(p).ID] != perPoster {
			t.Fatalf("%s: %d comments arrived, want %d", viewer(p).ID, next[viewer(p).ID], perPoster)
		}
	}
	if len(history) != posters*perPoster {
		t.Fatalf("history holds %d comments", len(history))
	}
}

func TestCommentText(t *testing.T) {
	r, _ := newTestRoom(t, Options{CommentInterval: -1})
	tests := []struct {
		name, text, want string
		err              error
	}{
		{"plain", "hello", "hello", nil},
		{"trimmed", "  hi there \n", "hi there", nil},
		{"newlines kept, blank runs cut", "a\r\nb\n\n\n\nc", "a\nb\n\nc", nil},
		{"controls removed", "bell\a and nul\x00 and esc\x1b[31m", "bell and nul and esc[31m", nil},
		{"bidi override removed", "abc\u202Efed", "abcfed", nil},
		{"html kept as text", "<b>bold</b> & co", "<b>bold</b> & co", nil},
		{"invalid utf-8 replaced", "a\xffb", "a\uFFFDb", nil},
		{"empty", "", "", ErrEmpty},
		{"only spaces", " \t\n ", "", ErrEmpty},
		{"only controls", "\x00\x01\u202E", "", ErrEmpty},
		{"280 emoji", strings.Repeat("🎉", 280), strings.Repeat("🎉", 280), nil},
		{"281 characters", strings.Repeat("x", 281), "", ErrTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := r.Post(viewer(1), tc.text)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err == nil && c.Text != tc.want {
				t.Fatalf("stored %q, want %q", c.Text, tc.want)
			}
		})
	}
	_, err := r.Post(viewer(1), strings.Repeat("x", 281))
	if err == nil || !strings.Contains(err.Error(), "280") {
		t.Fatalf("too long: %v; the message must give the limit", err)
	}
	if _, err := r.PostAsBroadcaster(strings.Repeat("x", 281)); !errors.Is(err, ErrTooLong) {
		t.Fatalf("broadcaster's long comment: %v", err)
	}
	if _, err := r.Post(Viewer{Name: "anon"}, "hi"); !errors.Is(err, ErrNoViewer) {
		t.Fatalf("no viewer id: %v", err)
	}
	if _, err := r.Post(Viewer{ID: strings.Repeat("v", MaxViewerIDBytes+1)}, "hi"); !errors.Is(err, ErrNoViewer) {
		t.Fatalf("viewer id too long: %v", err)
	}
}

func TestCommentFields(t *testing.T) {
	r, _ := newTestRoom(t, Options{})
	c, err := r.Post(Viewer{ID: "v1", Name: "  Ada\nLovelace\u202E  "}, "first")
	if err != nil {
		t.Fatal(err)
	}
	if c.ViewerID != "v1" || c.Name != "Ada Lovelace" || c.Broadcaster || !c.Time.Equal(wallTime) || c.ID == "" {
		t.Fatalf("comment %+v", c)
	}
	b, err := r.PostAsBroadcaster("welcome")
	if err != nil {
		t.Fatal(err)
	}
	if !b.Broadcaster || b.ViewerID != "" || b.Name != "Broadcaster" || b.ID == c.ID {
		t.Fatalf("broadcaster's comment %+v", b)
	}
	anon, _ := r.Post(Viewer{ID: "v2", Name: " \x00 "}, "hi")
	if anon.Name != DefaultName {
		t.Fatalf("empty name became %q", anon.Name)
	}
	long, _ := r.Post(Viewer{ID: "v3", Name: strings.Repeat("é", 100)}, "hi")
	if long.Name != strings.Repeat("é", MaxNameRunes) {
		t.Fatalf("long name became %q", long.Name)
	}
}

func TestCommentRateLimit(t *testing.T) {
	r, clock := newTestRoom(t, Options{})
	v := viewer(1)
	if _, err := r.Post(v, "one"); err != nil {
		t.Fatal(err)
	}
	_, err := r.Post(v, "two")
	var limited *RateLimitError
	if !errors.As(err, &limited) || !errors.Is(err, ErrRateLimited) || limited.RetryAfter != 2*time.Second {
		t.Fatalf("second comment at once: %v", err)
	}
	clock.Advance(1500 * time.Millisecond)
	_, err = r.Post(v, "two")
	if !errors.As(err, &limited) || limited.RetryAfter != 500*time.Millisecond {
		t.Fatalf("after 1.5 s: %v", err)
	}
	if !strings.Contains(err.Error(), "500ms") {
		t.Fatalf("message %q does not say how long to wait", err)
	}
	if _, err := r.Post(viewer(2), "someone else"); err != nil {
		t.Fatalf("another viewer is held up: %v", err)
	}
	clock.Advance(500 * time.Millisecond)
	if _, err := r.Post(v, "two"); err != nil {
		t.Fatalf("after 2 s: %v", err)
	}
	// A refused comment does not use up the allowance.
	clock.Advance(2 * time.Second)
	if _, err := r.Post(v, ""); !errors.Is(err, ErrEmpty) {
		t.Fatal(err)
	}
	if _, err := r.Post(v, "three"); err != nil {
		t.Fatalf("an empty comment used up the allowance: %v", err)
	}
	// The broadcaster is never held up.
	for i := range 5 {
		if _, err := r.PostAsBroadcaster(fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRateLimitCoversTheInvite(t *testing.T) {
	r, clock := newTestRoom(t, Options{})
	a := Viewer{ID: "a", InviteID: "inv1"}
	b := Viewer{ID: "b", InviteID: "inv1"} // a new viewer id on the same link
	c := Viewer{ID: "c", InviteID: "inv2"}
	if _, err := r.Post(a, "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Post(b, "one"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("same invite, new viewer id: %v", err)
	}
	if _, err := r.Post(c, "one"); err != nil {
		t.Fatalf("other invite: %v", err)
	}
	clock.Advance(2 * time.Second)
	if _, err := r.Post(b, "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Heart(a); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Heart(b); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("heart on the same invite: %v", err)
	}
}

func TestCommentsOff(t *testing.T) {
	r, _ := newTestRoom(t, Options{CommentInterval: -1})
	sub := r.Subscribe()
	if !r.CommentsEnabled() {
		t.Fatal("comments are off at first")
	}
	r.SetCommentsEnabled(false)
	r.SetCommentsEnabled(false) // no change, no event
	if r.CommentsEnabled() {
		t.Fatal("still on")
	}
	if _, err := r.Post(viewer(1), "hello?"); !errors.Is(err, ErrCommentsOff) {
		t.Fatalf("viewer's comment while off: %v", err)
	}
	if _, err := r.PostAsBroadcaster("we are back in 5"); err != nil {
		t.Fatalf("broadcaster's comment while off: %v", err)
	}
	if _, err := r.Heart(viewer(1)); err != nil {
		t.Fatalf("heart while comments are off: %v", err)
	}
	r.SetCommentsEnabled(true)
	if _, err := r.Post(viewer(1), "hello!"); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range pending(sub) {
		s := string(e.Type)
		if e.Type == EventCommentsEnabled {
			s += "=" + strconv.FormatBool(e.Enabled)
		}
		types = append(types, s)
	}
	if got, want := strings.Join(types, " "), "comments_enabled=false comment heart comments_enabled=true comment"; got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
}

func TestRemove(t *testing.T) {
	r, _ := newTestRoom(t, Options{CommentInterval: -1, History: 3})
	var ids []string
	for i := range 5 {
		c, err := r.Post(viewer(1), fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	sub := r.Subscribe()
	if err := r.Remove(ids[3]); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.History() {
		if c.ID == ids[3] {
			t.Fatal("removed comment still in the history")
		}
	}
	if got := len(r.History()); got != 2 {
		t.Fatalf("history holds %d", got)
	}
	// Beyond the history, but pages may still show it.
	if err := r.Remove(ids[0]); err != nil {
		t.Fatalf("remove a comment older than the history: %v", err)
	}
	events := pending(sub)
	if len(events) != 2 || events[0] != (Event{Type: EventCommentRemoved, CommentID: ids[3]}) ||
		events[1] != (Event{Type: EventCommentRemoved, CommentID: ids[0]}) {
		t.Fatalf("events %+v", events)
	}
	for _, id := range []string{ids[3], ids[0], "", "c-42", ids[1] + "0", ids[4] + "x", strings.Replace(ids[1], "-1", "-01", 1), "c-" + ids[4]} {
		if err := r.Remove(id); !errors.Is(err, ErrNoSuchComment) {
			t.Fatalf("remove %q: %v", id, err)
		}
	}
	r.Reset("next")
	if err := r.Remove(ids[4]); !errors.Is(err, ErrNoSuchComment) {
		t.Fatalf("remove a comment of the last broadcast: %v", err)
	}
	if len(pending(sub)) != 1 { // the reset
		t.Fatal("a refused removal sent an event")
	}
}

func TestBlockCoversViewerAndInvite(t *testing.T) {
	r, _ := newTestRoom(t, Options{CommentInterval: -1, HeartInterval: -1})
	troll := Viewer{ID: "troll", Name: "Troll", InviteID: "inv-troll"}
	if _, err := r.Post(troll, "spam"); err != nil {
		t.Fatal(err)
	}
	if err := r.Block("troll"); err != nil {
		t.Fatal(err)
	}
	if len(r.History()) != 1 {
		t.Fatal("a block removed comments")
	}
	sameLinkNewID := Viewer{ID: "troll-2", InviteID: "inv-troll"}
	sameIDOtherLink := Viewer{ID: "troll", InviteID: "inv-other"}
	for _, v := range []Viewer{troll, sameLinkNewID, sameIDOtherLink, {ID: "troll"}} {
		if !r.Blocked(v) {
			t.Fatalf("%+v is not blocked", v)
		}
		if _, err := r.Post(v, "more spam"); !errors.Is(err, ErrBlocked) {
			t.Fatalf("%+v posts: %v", v, err)
		}
		if _, err := r.Heart(v); !errors.Is(err, ErrBlocked) {
			t.Fatalf("%+v hearts: %v", v, err)
		}
	}
	friend := Viewer{ID: "friend", InviteID: "inv-other"}
	if r.Blocked(friend) {
		t.Fatal("an innocent viewer is blocked")
	}
	if _, err := r.Post(friend, "hi"); err != nil {
		t.Fatal(err)
	}
	// Hearts reveal the invite too.
	if _, err := r.Heart(Viewer{ID: "lurker", InviteID: "inv-lurker"}); err != nil {
		t.Fatal(err)
	}
	r.Block("lurker")
	if !r.Blocked(Viewer{ID: "new", InviteID: "inv-lurker"}) {
		t.Fatal("the invite a viewer hearted with is not blocked")
	}
	if err := r.Block("never-seen"); err != nil || !r.Blocked(Viewer{ID: "never-seen"}) {
		t.Fatalf("block an id not seen yet: %v", err)
	}
	if err := r.Block(""); !errors.Is(err, ErrNoViewer) {
		t.Fatalf("block with no id: %v", err)
	}
}

func TestIdleSendersAreSweptAndBlockStillFindsTheInvite(t *testing.T) {
	r, clock := newTestRoom(t, Options{HeartInterval: time.Second})
	if _, err := r.Post(Viewer{ID: "commenter", InviteID: "inv-c"}, "hi"); err != nil {
		t.Fatal(err)
	}
	// A flood of made-up viewer ids, a thousand a minute.
	for i := range 3 * sweepAtLeast {
		if i%1000 == 0 {
			clock.Advance(time.Minute)
		}
		if _, err := r.Heart(Viewer{ID: fmt.Sprint("made-up-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	r.mu.Lock()
	tracked, commenterTracked := len(r.viewers), r.viewers["commenter"] != nil
	r.mu.Unlock()
	if tracked > sweepAtLeast || commenterTracked {
		t.Fatalf("%d senders tracked (commenter among them: %v)", tracked, commenterTracked)
	}
	r.Block("commenter")
	if !r.Blocked(Viewer{ID: "other", InviteID: "inv-c"}) {
		t.Fatal("a swept commenter's invite was not found in the history")
	}
}

func TestHearts(t *testing.T) {
	r, clock := newTestRoom(t, Options{})
	sub := r.Subscribe()
	for i, want := range []uint64{1, 2, 3} {
		total, err := r.Heart(viewer(i))
		if err != nil || total != want {
			t.Fatalf("heart %d: %d, %v", i, total, err)
		}
	}
	_, err := r.Heart(viewer(0))
	var limited *RateLimitError
	if !errors.As(err, &limited) || limited.RetryAfter != 250*time.Millisecond {
		t.Fatalf("second heart at once: %v", err)
	}
	clock.Advance(100 * time.Millisecond)
	if _, err := r.Heart(viewer(0)); !errors.As(err, &limited) || limited.RetryAfter != 150*time.Millisecond {
		t.Fatalf("after 100 ms: %v", err)
	}
	clock.Advance(150 * time.Millisecond)
	if total, err := r.Heart(viewer(0)); err != nil || total != 4 {
		t.Fatalf("after 250 ms: %d, %v", total, err)
	}
	if r.Hearts() != 4 {
		t.Fatalf("Hearts() = %d", r.Hearts())
	}
	var counts []uint64
	for _, e := range pending(sub) {
		if e.Type != EventHeart {
			t.Fatalf("event %+v", e)
		}
		counts = append(counts, e.Count)
	}
	if fmt.Sprint(counts) != "[1 2 3 4]" {
		t.Fatalf("heart events %v", counts)
	}
}

func TestHeartEventsAreCoalesced(t *testing.T) {
	r, _ := newTestRoom(t, Options{HeartCoalesce: 20 * time.Millisecond})
	sub := r.Subscribe()
	const hearts = 500
	for i := range hearts {
		if _, err := r.Heart(viewer(i)); err != nil {
			t.Fatal(err)
		}
	}
	var counts []uint64
	timeout := time.After(10 * time.Second)
	for len(counts) == 0 || counts[len(counts)-1] != hearts {
		select {
		case e := <-sub.Events():
			counts = append(counts, e.Count)
		case <-timeout:
			t.Fatalf("the total never arrived: %v", counts)
		}
	}
	if counts[0] != 1 {
		t.Fatalf("the first heart was not sent at once: %v", counts)
	}
	if len(counts) > hearts/10 {
		t.Fatalf("%d heart events for %d hearts", len(counts), hearts)
	}
	for i := 1; i < len(counts); i++ {
		if counts[i] <= counts[i-1] {
			t.Fatalf("counts go backwards: %v", counts)
		}
	}
}

func TestReset(t *testing.T) {
	r, _ := newTestRoom(t, Options{})
	r.Reset("b1")
	v := Viewer{ID: "v", InviteID: "inv"}
	if _, err := r.Post(v, "hello"); err != nil {
		t.Fatal(err)
	}
	r.Heart(v)
	r.Block("bad")
	r.SetCommentsEnabled(false)
	sub := r.Subscribe()

	r.Reset("b1") // the same broadcast: nothing happens
	if len(r.History()) != 1 || r.Hearts() != 1 || len(pending(sub)) != 0 {
		t.Fatal("Reset with the current broadcast id cleared the room")
	}

	r.Reset("b2")
	if got := pending(sub); len(got) != 1 || got[0] != (Event{Type: EventReset, BroadcastID: "b2"}) {
		t.Fatalf("events on reset: %+v", got)
	}
	if len(r.History()) != 0 || r.Hearts() != 0 || r.Blocked(Viewer{ID: "bad"}) || r.BroadcastID() != "b2" {
		t.Fatal("reset left history, hearts or blocks behind")
	}
	if r.CommentsEnabled() {
		t.Fatal("reset turned comments back on")
	}
	r.SetCommentsEnabled(true)
	if _, err := r.Post(v, "again"); err != nil {
		t.Fatalf("rate limit survived the reset: %v", err)
	}
	if _, err := r.Heart(v); err != nil {
		t.Fatalf("heart limit survived the reset: %v", err)
	}
}

func TestSlowSubscriberIsDroppedWithoutHoldingUpOthers(t *testing.T) {
	const queue, comments = 4, 50
	r, _ := newTestRoom(t, Options{CommentInterval: -1, SubscriberQueue: queue})
	slow := r.Subscribe() // never reads
	fast := r.Subscribe() // reads each event as it comes
	got := make(chan int)
	go func() {
		n := 0
		for i := range comments {
			r.Post(viewer(i), "x")
			if _, ok := <-fast.Events(); ok {
				n++
			}
		}
		got <- n
	}()
	select {
	case n := <-got:
		if n != comments {
			t.Fatalf("the fast subscriber got %d of %d", n, comments)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("posting blocked on a slow subscriber")
	}
	if !slow.Dropped() || fast.Dropped() {
		t.Fatalf("dropped: slow %v, fast %v", slow.Dropped(), fast.Dropped())
	}
	n := 0
	for range slow.Events() { // what was queued, then closed
		n++
	}
	if n != queue {
		t.Fatalf("the slow subscriber got %d events before being dropped, want %d", n, queue)
	}
	slow.Close() // after a drop: fine
}

func TestSubscribeSnapshot(t *testing.T) {
	r, _ := newTestRoom(t, Options{CommentInterval: -1})
	r.Reset("b1")
	r.Post(viewer(1), "one")
	r.Post(viewer(2), "two")
	r.Heart(viewer(1))
	sub, snap := r.SubscribeSnapshot()
	r.Post(viewer(3), "three")
	if snap.BroadcastID != "b1" || !snap.CommentsEnabled || snap.Hearts != 1 || len(snap.Comments) != 2 ||
		snap.Comments[0].Text != "one" || snap.Comments[1].Text != "two" {
		t.Fatalf("snapshot %+v", snap)
	}
	events := snap.Events()
	if len(events) != 4 || events[0].Type != EventCommentsEnabled || events[1] != (Event{Type: EventHeart, Count: 1}) ||
		events[2].Comment.Text != "one" {
		t.Fatalf("snapshot events %+v", events)
	}
	if got := pending(sub); len(got) != 1 || got[0].Comment.Text != "three" {
		t.Fatalf("live events after the snapshot: %+v", got)
	}
}

func TestHistoryIsACopyAndBounded(t *testing.T) {
	r, _ := newTestRoom(t, Options{CommentInterval: -1, History: 3})
	for i := range 5 {
		r.Post(viewer(1), fmt.Sprint(i))
	}
	h := r.History()
	if len(h) != 3 || h[0].Text != "2" || h[2].Text != "4" {
		t.Fatalf("history %+v", h)
	}
	h[0].Text = "changed"
	if r.History()[0].Text != "2" {
		t.Fatal("History shares its slice")
	}
	none, _ := newTestRoom(t, Options{History: -1})
	none.Post(viewer(1), "x")
	if len(none.History()) != 0 {
		t.Fatal("History -1 keeps comments")
	}
}

func TestClose(t *testing.T) {
	r, _ := newTestRoom(t, Options{HeartCoalesce: time.Hour}) // a timer is pending at Close
	sub := r.Subscribe()
	r.Heart(viewer(1))
	r.Heart(viewer(2))
	r.Close()
	r.Close()
	<-sub.Events() // the first heart
	if _, ok := <-sub.Events(); ok {
		t.Fatal("subscription still open after Close")
	}
	sub.Close()
	if _, err := r.Post(viewer(1), "hi"); !errors.Is(err, ErrClosed) {
		t.Fatalf("post after close: %v", err)
	}
	if _, err := r.Heart(viewer(3)); !errors.Is(err, ErrClosed) {
		t.Fatalf("heart after close: %v", err)
	}
	if _, ok := <-r.Subscribe().Events(); ok {
		t.Fatal("subscribe after close is open")
	}
}

func TestCommentIDsDifferAcrossRoomsAndBroadcasts(t *testing.T) {
	a, _ := newTestRoom(t, Options{})
	b, _ := newTestRoom(t, Options{})
	ca, _ := a.Post(viewer(1), "x")
	cb, _ := b.Post(viewer(1), "x")
	a.Reset("next")
	ca2, _ := a.PostAsBroadcaster("x")
	if ca.ID == cb.ID || ca.ID == ca2.ID {
		t.Fatalf("ids %s %s %s", ca.ID, cb.ID, ca2.ID)
	}
}
