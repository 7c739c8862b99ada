package dump

import "hash"

// hashPipe feeds a hash on a goroutine of its own, in order, so that the
// digests' SHA-256 runs beside the formatting instead of inside it (the
// engine's goroutines otherwise leave part of the second core idle).
// Chunks are either buffers the pipe owns, which it hands back through
// free once hashed, or borrowed slices (a large value in a page), which
// the sender must keep unchanged until wait returns.
//
// Only the pipe's goroutine touches h between a send and the following
// wait; the sender may use h again once wait has returned.
type hashPipe struct {
	h    hash.Hash
	work chan hashChunk
	free chan []byte
	idle chan struct{}
	done chan struct{}
	busy bool // something was sent since the last wait
}

type hashChunk struct {
	b    []byte
	own  bool // return b to free once hashed
	sync bool // reply on idle: everything sent before is hashed
}

// hashPipeBuffers is how many owned buffers the pipe cycles through: the
// sender fills one while the pipe hashes the others.
const hashPipeBuffers = 8

func newHashPipe(h hash.Hash, bufSize int) *hashPipe {
	p := &hashPipe{
		h:    h,
		work: make(chan hashChunk, hashPipeBuffers+2),
		free: make(chan []byte, hashPipeBuffers),
		idle: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	for range hashPipeBuffers - 1 { // the sender holds one
		p.free <- make([]byte, 0, bufSize)
	}
	go p.loop()
	return p
}

func (p *hashPipe) loop() {
	defer close(p.done)
	for c := range p.work {
		switch {
		case c.sync:
			p.idle <- struct{}{}
		case c.own:
			p.h.Write(c.b)
			p.free <- c.b[:0]
		default:
			p.h.Write(c.b)
		}
	}
}

// send hands b to the pipe. An owned b is replaced by a free buffer,
// which is returned.
func (p *hashPipe) send(b []byte, own bool) []byte {
	p.busy = true
	p.work <- hashChunk{b: b, own: own}
	if own {
		return <-p.free
	}
	return nil
}

// wait returns once everything sent so far is hashed.
func (p *hashPipe) wait() {
	if !p.busy {
		return
	}
	p.work <- hashChunk{sync: true}
	<-p.idle
	p.busy = false
}

// close stops the goroutine; what is still queued is hashed first, so
// borrowed slices are no longer read once close returns.
func (p *hashPipe) close() {
	close(p.work)
	<-p.done
}
