/* Tests of volley sink's rules: the parser's errors (file, line, column), and
 * the matcher for every condition and action, with the clock and the random
 * generator in the test's hands. The example rules shipped in bench/rules/
 * must parse. */
#include "bench/sink_rules.h"
#include "tests/testutil.h"

#include <stdlib.h>

static struct sink_rules *parse(const char *text, char *err, size_t errlen)
{
	err[0] = 0;
	return sink_rules_parse("r.rules", text, strlen(text), err, errlen);
}

static void test_errors(void)
{
	static const struct { const char *text, *err; } bad[] = {
		{ "at=rcpt bounce\n", "r.rules:1:9: unknown action 'bounce' (reply, delay, disconnect, greylist)" },
		{ "# ok\n\nat=nowhere reply 550 x\n", "r.rules:3:4: unknown stage 'nowhere' (connect, helo, mail, rcpt, data, body)" },
		{ "rcpt=a@b reply 550 No\n", "r.rules:1:1: no stage: add at=connect|helo|mail|rcpt|data|body" },
		{ "at=rcpt reply 350 x\n", "r.rules:1:15: reply code must be 2xx, 4xx or 5xx" },
		{ "at=rcpt reply 550\n", "r.rules:1:18: reply needs a text" },
		{ "at=rcpt reply\n", "r.rules:1:9: reply needs a code and a text" },
		{ "at=rcpt reply 550 4.1.1 wrong class\n", "r.rules:1:19: bad enhanced status code '4.1.1' for 550" },
		{ "at=rcpt reply 550 5.1.1\n", "r.rules:1:24: reply needs a text" },
		{ "at=mail rcpt=x@y reply 550 No\n", "r.rules:1:9: rcpt= cannot match at=mail (no recipient yet)" },
		{ "  at=connect from=x reply 554 No\n", "r.rules:1:14: from= cannot match at=connect (no sender yet)" },
		{ "at=mail greylist\n", "r.rules:1:1: greylist works at=rcpt only" },
		{ "at=rcpt prob=1.5 reply 450 x\n", "r.rules:1:14: prob= needs a number from 0 to 1" },
		{ "at=rcpt rate>0 reply 450 x\n", "r.rules:1:14: rate> needs a number from 1 to 1000000" },
		{ "at=rcpt after=x reply 450 x\n", "r.rules:1:15: after= needs a number of messages" },
		{ "at=rcpt delay soon\n", "r.rules:1:15: delay needs milliseconds (0 to 3600000)" },
		{ "at=rcpt disconnect now\n", "r.rules:1:20: unexpected 'now' after the action" },
		{ "at=rcpt color=red reply 550 x\n", "r.rules:1:9: unknown condition 'color'" },
		{ "at=rcpt rcpt=a\n", "r.rules:1:15: no action (reply, delay, disconnect, greylist)" },
		{ "at=rcpt\treply 550 bad\x01text\n", "r.rules:1:22: control character" },
	};
	char err[256];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct sink_rules *r = parse(bad[i].text, err, sizeof err);
		T_TRUE(r == NULL);
		T_EQ_STR(err, bad[i].err);
		sink_rules_free(r);
	}
	struct sink_rules *r = parse("\n  # nothing\n\t\n", err, sizeof err);
	T_TRUE(r != NULL);
	T_EQ_INT(sink_rules_count(r), 0);
	sink_rules_free(r);
	/* A file that does not exist names itself. */
	r = sink_rules_load("/nonexistent/x.rules", err, sizeof err);
	T_TRUE(r == NULL);
	T_EQ_STR(err, "/nonexistent/x.rules: No such file or directory");
}

struct view_buf {
	struct sink_view v;
	char rcpts[256];
};

static struct sink_view *view(struct view_buf *b, enum sink_stage st, const char *from, const char *rcpt,
			      const char *accepted, unsigned messages)
{
	memset(b, 0, sizeof *b);
	b->v.stage = st;
	b->v.helo = "client.test";
	b->v.from = from ? from : "";
	b->v.rcpt = rcpt;
	/* accepted: comma-separated, turned into NUL-separated */
	size_t n = 0;
	unsigned k = 0;
	if (accepted && *accepted) {
		n = strlen(accepted);
		memcpy(b->rcpts, accepted, n + 1);
		for (size_t i = 0; i < n; i++)
			if (b->rcpts[i] == ',')
				b->rcpts[i] = 0, k++;
		k++;
	}
	b->v.rcpts = b->rcpts;
	b->v.nrcpt = k;
	b->v.messages = messages;
	return &b->v;
}

static const char *decide_str(struct sink_rules *r, struct sink_match *m, const struct sink_view *v)
{
	static char out[512];
	struct sink_verdict vd = { SINK_ACCEPT, 0, NULL, NULL, 0 };
	sink_rules_decide(r, m, v, &vd);
	switch (vd.action) {
	case SINK_ACCEPT:
		snprintf(out, sizeof out, "accept+%u", vd.delay_ms);
		break;
	case SINK_DROP:
		snprintf(out, sizeof out, "drop+%u", vd.delay_ms);
		break;
	case SINK_REPLY:
		snprintf(out, sizeof out, "%d %s %s+%u", vd.code, vd.enhanced ? vd.enhanced : "-", vd.text, vd.delay_ms);
		break;
	}
	return out;
}

static void test_matching(void)
{
	const char text[] =
		"# per recipient, per sender, per client\n"
		"at=rcpt rcpt=*@bounce.test reply 550 5.1.1 User unknown   # a comment\n"
		"at=rcpt rcpt=full?@dest.test reply 452 4.2.2 Mailbox full\n"
		"at=mail from=spammer@* reply 553 5.7.1 Sender refused\n"
		"at=connect client=127.0.0.9 reply 554 5.7.1 Your address is blocked\n"
		"at=helo helo=*.bad.test reply 550 Go away\n"
		"at=data rcpt=slow@dest.test delay 1500\n"
		"at=data delay 100\n"
		"at=data rcpt=tempdata@dest.test reply 451 4.3.0 Try again later\n"
		"at=body rcpt=drop@dest.test disconnect\n"
		"at=body rcpt=spam@dest.test reply 554 5.7.1 Message rejected as spam\n"
		"at=mail after=3 reply 421 4.7.0 Too many messages on this connection\n";
	char err[256];
	struct sink_rules *r = parse(text, err, sizeof err);
	if (!r) {
		T_FAIL("parse: %s", err);
		return;
	}
	T_EQ_INT(sink_rules_count(r), 11);
	T_EQ_INT(sink_rules_need_client(r), 1);
	uint64_t rng = 1;
	struct sink_match m = { "127.0.0.1", 1000, &rng };
	struct view_buf b;
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_RCPT, "a@src.test", "x@Bounce.TEST", NULL, 0)),
		 "550 5.1.1 User unknown+0");
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_RCPT, "a@src.test", "full1@dest.test", NULL, 0)),
		 "452 4.2.2 Mailbox full+0");
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_RCPT, "a@src.test", "full12@dest.test", NULL, 0)),
		 "accept+0");
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_MAIL, "spammer@x.test", NULL, NULL, 0)),
		 "553 5.7.1 Sender refused+0");
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_MAIL, "", NULL, NULL, 0)), "accept+0");
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_CONNECT, NULL, NULL, NULL, 0)), "accept+0");
	struct sink_match m9 = { "127.0.0.9", 1000, &rng };
	T_EQ_STR(decide_str(r, &m9, view(&b, SINK_STAGE_CONNECT, NULL, NULL, NULL, 0)),
		 "554 5.7.1 Your address is blocked+0");
	b.v.helo = "host.bad.test";
	b.v.stage = SINK_STAGE_HELO;
	T_EQ_STR(decide_str(r, &m, &b.v), "550 - Go away+0");
	/* Delays add up until a rule decides. */
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_DATA, "a@src.test", NULL, "ok@dest.test", 0)), "accept+100");
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_DATA, "a@src.test", NULL, "ok@dest.test,slow@dest.test", 0)),
		 "accept+1600");
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_DATA, "a@src.test", NULL, "tempdata@dest.test,slow@dest.test", 0)),
		 "451 4.3.0 Try again later+1600");
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_BODY, "a@src.test", NULL, "a@dest.test,drop@dest.test", 0)),
		 "drop+0");
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_BODY, "a@src.test", NULL, "spam@dest.test", 0)),
		 "554 5.7.1 Message rejected as spam+0");
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_MAIL, "a@src.test", NULL, NULL, 2)), "accept+0");
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_MAIL, "a@src.test", NULL, NULL, 3)),
		 "421 4.7.0 Too many messages on this connection+0");
	sink_rules_free(r);
}

static void test_rate(void)
{
	char err[256];
	struct sink_rules *r = parse("at=mail rate>5 reply 421 4.7.28 Unusual rate of mail\n", err, sizeof err);
	uint64_t rng = 1;
	struct sink_match m = { "127.0.0.1", 50000, &rng };
	struct view_buf b;
	view(&b, SINK_STAGE_MAIL, "a@src.test", NULL, NULL, 0);
	/* A burst of 5 at one instant passes; the 6th is over the rate. */
	for (int i = 0; i < 5; i++)
		T_EQ_STR(decide_str(r, &m, &b.v), "accept+0");
	T_EQ_STR(decide_str(r, &m, &b.v), "421 4.7.28 Unusual rate of mail+0");
	/* 200 ms later one more fits (5/s is one per 200 ms). */
	m.now_ms += 200;
	T_EQ_STR(decide_str(r, &m, &b.v), "accept+0");
	T_EQ_STR(decide_str(r, &m, &b.v), "421 4.7.28 Unusual rate of mail+0");
	/* A steady 4 a second is never over. */
	m.now_ms += 2000;
	int over = 0;
	for (int i = 0; i < 40; i++, m.now_ms += 250)
		over += strcmp(decide_str(r, &m, &b.v), "accept+0") != 0;
	T_EQ_INT(over, 0);
	sink_rules_free(r);
}

static void test_prob(void)
{
	char err[256];
	struct sink_rules *r = parse("at=rcpt prob=0.25 reply 451 4.3.0 Flaky\n", err, sizeof err);
	struct view_buf b;
	view(&b, SINK_STAGE_RCPT, "a@src.test", "c@dest.test", NULL, 0);
	uint64_t rng = 12345;
	struct sink_match m = { "127.0.0.1", 0, &rng };
	char first[64] = { 0 };
	int hits = 0;
	for (int i = 0; i < 4000; i++) {
		const char *d = decide_str(r, &m, &b.v);
		hits += d[0] == '4';
		if (i < 63)
			first[i] = d[0];
	}
	T_TRUE(hits > 850 && hits < 1150);
	/* The same seed, the same draws. */
	rng = 12345;
	char again[64] = { 0 };
	for (int i = 0; i < 63; i++)
		again[i] = decide_str(r, &m, &b.v)[0];
	T_EQ_STR(again, first);
	sink_rules_free(r);
	r = parse("at=rcpt prob=0 reply 451 4.3.0 Never\nat=rcpt prob=1 reply 450 4.2.0 Always\n", err, sizeof err);
	T_EQ_STR(decide_str(r, &m, &b.v), "450 4.2.0 Always+0");
	sink_rules_free(r);
}

static void test_greylist(void)
{
	char err[256];
	struct sink_rules *r = parse("at=rcpt rcpt=*@grey.test greylist 60\n", err, sizeof err);
	uint64_t rng = 1;
	struct sink_match m = { "127.0.0.1", 1000000, &rng };
	struct view_buf b;
	const char *grey = "451 4.7.1 Greylisted, please try again later+0";
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_RCPT, "a@src.test", "x@grey.test", NULL, 0)), grey);
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_RCPT, "a@src.test", "y@grey.test", NULL, 0)), grey);
	m.now_ms += 30000;
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_RCPT, "a@src.test", "x@grey.test", NULL, 0)), grey);
	m.now_ms += 30000;
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_RCPT, "A@SRC.test", "x@grey.test", NULL, 0)), "accept+0");
	/* Another sender is another pair. */
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_RCPT, "b@src.test", "x@grey.test", NULL, 0)), grey);
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_RCPT, "a@src.test", "x@other.test", NULL, 0)), "accept+0");
	sink_rules_free(r);
	/* Without a delay the second attempt passes. */
	r = parse("at=rcpt greylist\n", err, sizeof err);
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_RCPT, "", "x@d.test", NULL, 0)), grey);
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_RCPT, "", "x@d.test", NULL, 0)), "accept+0");
	/* The table is bounded: many pairs never grow it; it forgets. */
	char addr[64];
	for (int i = 0; i < SINK_GREY_SLOTS; i++) {
		snprintf(addr, sizeof addr, "u%d@d.test", i);
		decide_str(r, &m, view(&b, SINK_STAGE_RCPT, "", addr, NULL, 0));
	}
	T_EQ_STR(decide_str(r, &m, view(&b, SINK_STAGE_RCPT, "", "u5@d.test", NULL, 0)), grey);
	sink_rules_free(r);
}

static void test_shipped(void)
{
	static const char *const files[] = { "gmail.rules", "yahoo.rules", "faults.rules" };
	char err[256], path[256];
	/* meson runs the unit tests in tests/; by hand they may run from the top. */
	FILE *f = fopen("../bench/rules/gmail.rules", "r");
	const char *dir = f ? "../bench/rules" : "bench/rules";
	if (f)
		fclose(f);
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		struct sink_rules *r = sink_rules_load(path, err, sizeof err);
		if (!r)
			T_FAIL("%s", err);
		T_TRUE(sink_rules_count(r) > 0);
		sink_rules_free(r);
	}
}

int main(void)
{
	test_errors();
	test_matching();
	test_rate();
	test_prob();
	test_greylist();
	test_shipped();
	return t_done("sink_rules");
}
