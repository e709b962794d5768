package sink

// Joined is the number of scrapes waiting for the gather in flight, not
// counting the one gathering.
func (c *Component) Joined() int { return c.joined() }
