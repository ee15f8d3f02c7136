"""The demo's bundled feedback: hand-written customer messages and answers, composed into feedback events.

This is made-up sample data for `finetune demo`, not anyone's real feedback. Three agents draft replies
(`support` for an outdoor-gear shop, `sales` and `billing` for a project-planning product); their teams
accept, edit or reject the drafts. Every customer, order, company and invoice is invented; a few messages
carry an email address or phone number (example.com domains, 555-01xx and 020 7946 0xxx numbers) so that
redaction has something to show.

What the teams want is fixed per agent and planted consistently, so the analytics find it and a model
trained on the corrections learns it:

- support: drafts often open with filler (`FILLERS`) that users delete, and users end every reply with
  `SIGN_OFF`;
- sales: users delete hedging (`HEDGE`, openers that "just wanted to" say something) and end with a concrete
  next step (`NEXT_STEP`: a day, a time, a 20-minute call) instead of a vague one;
- billing: users delete "Unfortunately," from bad news and add the invoice number (`INVOICE_REFERENCE`)
  when the customer named an invoice.

A customer message is a greeting, one of the agent's asks with its slots filled (order numbers, products,
companies, invoices...), sometimes contact details, and sometimes a signature with the customer's name. The
answer the team wants (`ideal_parts`) is read back from the message alone (`parse`): the same message always
gets the same answer, with the facts it names and a few more derived from it (a carrier, a weekday).

`generate_events(seed)` composes the bundled file, `feedback.jsonl` (`sample_path()`): `EVENTS_PER_AGENT`
events per agent in the `MIX` of accepted, edited and rejected drafts, spread over the `DAYS` days before
`END` with a weekday rhythm. Accepted drafts are already what the team wants; edited ones carry the agent's
habits (each with the share in `HABIT_SHARES`) and their final is the wanted answer; rejected ones answer
something else (or nothing) and are rewritten. After changing the pools, write the file again with
`python -c "from core.demo.samples import write_sample; write_sample()"`; a test checks that file and generator
agree.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.errors import InvalidInput

AGENTS = ("support", "sales", "billing")
MODEL = "gpt-4o-mini"
END = datetime(2026, 11, 30, tzinfo=UTC)  # the sample's events fall in the DAYS days before this
DAYS = 42
EVENTS_PER_AGENT = 100
MIX = {"accepted": 45, "edited": 40, "rejected": 15}  # outcomes per EVENTS_PER_AGENT events of each agent
FINAL_ON_ACCEPT = 1 / 3  # accepted drafts that come with final == output rather than no final
CONTACT_SHARE = 0.12  # customer messages with an email address or phone number
WEEKDAY_WEIGHTS = (1.0, 1.1, 1.05, 1.0, 0.85, 0.2, 0.12)  # Monday..Sunday: teams review drafts on workdays
HOUR_WEIGHTS = {8: 2, 9: 5, 10: 6, 11: 6, 12: 3, 13: 5, 14: 6, 15: 5, 16: 4, 17: 2, 18: 1}  # UTC

FILLERS = ("Let me analyze this for you.", "Great question!")
SIGN_OFF = "Best regards, the Support team"
HEDGE = "I think maybe"
HEDGE_OPENERS = (
    "I just wanted to follow up on your message.",
    "Just wanted to check in about your question.",
    "I just wanted to reach out and answer your question.",
)
NEXT_STEP = "Would {day} at {time} work for a 20-minute call?"
VAGUE_ENDINGS = (
    "Let me know if you have any questions.",
    "Feel free to reach out if you'd like to learn more.",
    "Looking forward to hearing from you.",
)
UNFORTUNATELY = "Unfortunately,"
INVOICE_REFERENCE = "Invoice reference: {invoice}"
SUPPORT_CLOSERS = ("Hope this helps!",)  # what support drafts end with when they lack the sign-off, if anything

# Of the edited drafts that can show a habit, the share that does (at least one habit shows in each).
HABIT_SHARES = {
    "filler": 0.8,  # support: opens with a FILLERS sentence
    "no_sign_off": 0.75,  # support: lacks SIGN_OFF
    "hedge_opener": 0.7,  # sales: opens with a HEDGE_OPENERS sentence
    "hedge": 0.75,  # sales: the answer starts with HEDGE
    "vague_ending": 0.85,  # sales: a VAGUE_ENDINGS sentence instead of NEXT_STEP
    "unfortunately": 0.85,  # billing: bad news opens with UNFORTUNATELY
    "no_invoice_reference": 0.8,  # billing: lacks INVOICE_REFERENCE where the customer named an invoice
    "padding": 0.2,  # support, billing: a sentence nobody needs
}
NON_ANSWER_SHARE = 0.3  # rejected drafts that answer nothing; the rest answer another question


# The pools ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One kind of customer message and the answer the team wants to it.

    `asks` are the customer's phrasings, `answer` the sentences of the wanted answer; both hold `{slot}`s. Every
    slot of the answer is in every ask, or derived from the message (`DERIVED`). `bad_news` (billing): the answer's
    first sentence is bad news, which drafts soften with "Unfortunately,". `choices` narrows a slot's pool for this
    case (only clothes change size); `price` is the per-user monthly price behind an `{annual}` total.
    """

    intent: str
    asks: tuple[str, ...]
    answer: tuple[str, ...]
    bad_news: bool = False
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    price: int = 0


@dataclass(frozen=True)
class Profile:
    """An agent of the demo: its system prompt, what customers ask it, who reviews its drafts."""

    agent: str
    template: str
    system: str
    cases: tuple[Case, ...]
    reviewers: tuple[str, ...]
    padding: tuple[str, ...]
    non_answers: tuple[str, ...]


CLOTHES = ("rain shell jacket", "fleece pullover", "down vest", "merino base layer", "insulated parka")
GEAR = (
    "insulated water bottle", "40L hiking backpack", "camping stove", "down sleeping bag", "two-person tent",
    "headlamp", "water filter", "camp chair",
)  # fmt: skip
# Products are single things: the answers say "the {product} is" and "arrives".
PRODUCTS = CLOTHES + GEAR
CODES = ("TRAIL15", "SUMMIT20", "CAMP10", "WELCOME15", "AUTUMN25")
COMPANIES = (
    "Harbor & Finch", "Brightline Dental", "Northgate Logistics", "Maple Street Bakery", "Copperleaf Studio",
    "Redwood Analytics", "Bluewater Clinics", "Tidewell Architects", "Orchard Lane Foods", "Summit Ridge Schools",
    "Kestrel Robotics", "Lumen & Co", "Pinecrest Property", "Silverline Events",
)  # fmt: skip
FEATURES = (
    "recurring tasks", "resource planning", "time tracking", "timeline views", "client portals",
    "workload reports", "task dependencies",
)  # fmt: skip
TOOLS = ("Jira", "Salesforce", "HubSpot", "Slack", "Google Drive", "Microsoft Teams", "GitHub")
CARRIERS = ("UPS", "FedEx", "USPS")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
TIMES = ("9am", "10am", "11am", "1pm", "2pm", "3pm", "4pm")

CUSTOMERS = (
    "Jordan", "Amara", "Luis", "Hannah", "Kenji", "Sofia", "Mateo", "Olivia", "Noah", "Fatima", "Ethan", "Chloe",
    "Diego", "Grace", "Yusuf", "Ingrid", "Omar", "Zoe", "Rahul", "Elena", "Samir", "Nina", "Felix", "Aisha",
    "Caleb", "Mei", "Tobias", "Leah", "Andre", "Camille",
)  # fmt: skip
SURNAMES = (
    "Ellis", "Okafor", "Moreno", "Becker", "Tanaka", "Rossi", "Silva", "Nguyen", "Haddad", "Larsen", "Kowalski",
    "Dubois", "Patel", "Reyes", "Hughes", "Lindqvist",
)  # fmt: skip
CUSTOMER_GREETINGS = ("", "", "Hi,\n\n", "Hello,\n\n", "Hi there,\n\n", "Hey,\n\n", "Good morning,\n\n")
SIGNATURES = ("", "", "\n\nThanks,\n{name}", "\n\nBest,\n{name}", "\n\n{name}", " Thanks, {name}", "\n\n— {name}")
CONTACTS = (
    "You can reach me at {email} or {phone}.",
    "My email is {email} if you need it.",
    "Call me at {phone} if that's easier.",
    "Please reply to {email}, not the address on the order.",
)
PERSON_PLACEHOLDER = "[PERSON]"  # what a name becomes when names are redacted

SUPPORT = Profile(
    agent="support",
    template="support-v1",
    system=(
        "You are the customer support assistant of Fernhill Outfitters, an online store for outdoor gear. "
        "Write a short, friendly email reply to the customer. Orders ship within one business day; returns are "
        "free within 30 days."
    ),
    reviewers=("maya", "tomas", "priya", "dev"),
    padding=(
        "Additionally, you can find answers to many common questions in our Help Center.",
        "Furthermore, our team is always here to help with anything else you need.",
    ),
    non_answers=(
        "Thank you for contacting Fernhill Outfitters. We have received your message, and a member of our team "
        "will get back to you within 48 hours.",
        "Thanks for reaching out! We value every customer and are always happy to help with your outdoor "
        "adventures. Please visit our Help Center for more information.",
    ),
    cases=(
        Case(
            "refund",
            (
                "I returned the {product} from order #{order} two weeks ago and still haven't seen my refund. "
                "Can you check on it?",
                "Where is my refund for order #{order}? I sent the {product} back and the tracking says you got it.",
            ),
            (
                "Your return for order #{order} reached our warehouse, and the refund for the {product} was "
                "issued today.",
                "It usually shows on your statement within 5-7 business days, and you'll get a confirmation email "
                "once it posts.",
            ),
        ),
        Case(
            "refund",
            (
                "The {product} I ordered (order #{order}) isn't what I expected. Can I get my money back?",
                "I'd like a refund for the {product} in order #{order}. It doesn't suit me.",
            ),
            (
                "Yes, you can return the {product} from order #{order} for a full refund within 30 days.",
                "I've emailed you a prepaid label; the refund goes back to your card once the package is scanned.",
            ),
        ),
        Case(
            "shipping",
            (
                "My order #{order} was supposed to arrive by now. Where is it?",
                "Order #{order} still shows as processing. When will it ship?",
            ),
            (
                "Order #{order} left our warehouse yesterday with {carrier} and should arrive within {days} "
                "business days.",
                "You can follow it with the tracking link in your shipping confirmation email.",
            ),
        ),
        Case(
            "shipping",
            (
                "Can I upgrade order #{order} to express shipping? I need the {product} before my trip on Friday.",
                "Is there any way to get the {product} faster? It's order #{order} and I leave for a hike this "
                "weekend.",
            ),
            (
                "I've upgraded order #{order} to express shipping at no extra cost, so the {product} arrives within "
                "2 business days.",
                "A new tracking number is on its way to your inbox.",
            ),
        ),
        Case(
            "damaged",
            (
                "The {product} from order #{order} arrived damaged. The box was crushed.",
                "My {product} (order #{order}) came broken. What can you do?",
            ),
            (
                "I'm sorry the {product} arrived damaged.",
                "A replacement for order #{order} ships today at no cost, and there's no need to send the damaged "
                "one back.",
                "A photo of the damage would help us file a claim with {carrier}.",
            ),
        ),
        Case(
            "damaged",
            ("I ordered the {product} but got something completely different in order #{order}.",),
            (
                "We packed the wrong item in order #{order}; the {product} you ordered ships today by express.",
                "Please keep or donate the item you received; there's no need to return it.",
            ),
        ),
        Case(
            "returns",
            (
                "Can I exchange the {product} from order #{order} for a bigger size?",
                "The {product} in order #{order} is too small. How do I swap it for a size up?",
            ),
            (
                "You can exchange the {product} from order #{order} for free.",
                "Start the exchange from your order page and pick the new size; we ship it as soon as the return "
                "label is scanned.",
            ),
            choices={"product": CLOTHES},
        ),
        Case(
            "returns",
            ("I bought the {product} about five weeks ago (order #{order}). Is it too late to return it?",),
            (
                "Order #{order} is just past our 30-day return window, but we're happy to make an exception.",
                "I've emailed you a prepaid label for the {product}, and the refund follows once it's scanned.",
            ),
        ),
        Case(
            "order_change",
            (
                "Please cancel order #{order}. I ordered the {product} by mistake.",
                "Can I still cancel order #{order}? I don't need the {product} anymore.",
            ),
            (
                "Order #{order} hadn't shipped yet, so I've cancelled it.",
                "The full amount goes back to your card within 3-5 business days, and a cancellation email is on "
                "its way.",
            ),
        ),
        Case(
            "order_change",
            (
                "I moved last week. Can you change the shipping address on order #{order}?",
                "I entered the wrong address for order #{order}. Can it still be changed?",
            ),
            (
                "Order #{order} hasn't shipped yet, so the address can still be changed.",
                "Reply with the full new address and I'll update it before the parcel leaves our warehouse.",
            ),
        ),
        Case(
            "account",
            (
                "I can't log in to my account. The password reset email never arrives.",
                "The reset link you sent me says it has expired. How do I get into my account?",
            ),
            (
                "I've sent you a new password reset link that stays valid for 24 hours.",
                "If it doesn't arrive within a few minutes, please check your spam folder.",
            ),
        ),
        Case(
            "account",
            ("How do I change the email address on my account?", "Can I move my account to a new email address?"),
            (
                "You can change your email under Account settings, then Profile.",
                "We'll send a confirmation link to the new address, and the change takes effect once you click it.",
            ),
        ),
        Case(
            "product",
            (
                "When will the {product} be back in stock?",
                "Is the {product} coming back? It's been sold out for weeks.",
            ),
            (
                "The {product} is due back in stock in about {weeks} weeks.",
                "Use the Notify me button on the product page and we'll email you the moment it's available.",
            ),
        ),
        Case(
            "warranty",
            ("My {product} stopped working properly after three months. Is that covered by the warranty?",),
            (
                "Yes, the {product} is covered by our two-year warranty.",
                "Send us a photo of the problem and your order number, and we'll repair or replace it at no cost.",
            ),
            choices={"product": GEAR},
        ),
        Case(
            "promotion",
            (
                "My discount code {code} isn't working at checkout.",
                "Why does the code {code} say it's invalid? I got it in your newsletter.",
            ),
            (
                "The code {code} expired on Sunday, but I've added the same discount to your account.",
                "It applies automatically at checkout on your next order within 14 days.",
            ),
        ),
    ),
)

SALES = Profile(
    agent="sales",
    template="sales-v1",
    system=(
        "You are a sales assistant for Quillpath, project planning software for teams. Write a short follow-up "
        "email to the lead. Plans: Starter $8, Team $14 and Business $24 per user per month, billed annually."
    ),
    reviewers=("lena", "marcus", "aiko"),
    padding=(),
    non_answers=(
        "Thanks for your interest in Quillpath! Quillpath is the best project planning tool on the market, and "
        "thousands of teams love it. You can sign up on our website at any time.",
        "Thank you for reaching out. Our sales team has received your request and will contact you soon with "
        "more information about our products.",
    ),
    cases=(
        Case(
            "pricing",
            (
                "We're a team of {seats} at {company}. What would Quillpath cost us per year?",
                "Could you send pricing for {seats} users? We're comparing tools at {company}.",
            ),
            (
                "The Team plan fits {company} best: {seats} users at $14 per user per month comes to {annual} a "
                "year, billed annually.",
                "It includes unlimited projects, guest access and priority support.",
            ),
            price=14,
        ),
        Case(
            "pricing",
            (
                "Is there a discount for nonprofits? We're {company}, about {seats} people.",
                "Do you have nonprofit pricing? {company} has {seats} staff.",
            ),
            (
                "Nonprofits get 50% off, so the Team plan is $7 per user per month for your {seats} people.",
                "Send us your registration document and we'll apply the discount before your first invoice.",
            ),
        ),
        Case(
            "pricing",
            ("Do you offer a discount if {company} pays for two years up front?",),
            (
                "A two-year commitment takes 15% off the annual price, and the rate stays locked for both years.",
                "For {company} that means the Team plan at $11.90 per user per month.",
            ),
        ),
        Case(
            "pricing",
            ("We'd need {seats} seats on the Business plan. Can you send a formal quote for {company}?",),
            (
                "A quote for {seats} Business seats is attached: $24 per user per month, {annual} a year.",
                "It's valid for 30 days, and I can add a purchase order number if {company} needs one.",
            ),
            price=24,
        ),
        Case(
            "demo",
            (
                "Can we get a demo of Quillpath for our operations team at {company}?",
                "Could someone walk {company} through Quillpath? We'd like to see it before deciding.",
            ),
            (
                "A live demo is the quickest way to see whether Quillpath fits {company}.",
                "We'll walk through planning, timelines and reporting with your own projects and leave time for "
                "questions.",
            ),
        ),
        Case(
            "demo",
            (
                "I'd like to see how Quillpath handles {feature} before we decide. Can someone show us?",
                "Does Quillpath do {feature}? A quick walkthrough would help us.",
            ),
            (
                "Every Quillpath plan includes {feature}, and a short walkthrough shows it best.",
                "We'll set it up with one of your real projects so you can judge it on your own work.",
            ),
        ),
        Case(
            "trial",
            (
                "Our trial ends in two days but we haven't finished testing. Could {company} get more time?",
                "Is it possible to extend our Quillpath trial? The team at {company} only started last week.",
            ),
            (
                "Your trial is now extended by 14 days.",
                "All the projects and settings {company} created stay exactly as they are.",
            ),
        ),
        Case(
            "trial",
            (
                "How do we start a free trial for {seats} people? Do we need a credit card?",
                "Can {seats} of us try Quillpath for free first?",
            ),
            (
                "A free trial covers every Team plan feature for 14 days, with no credit card needed.",
                "Invite all {seats} people from the Members page; nothing is charged unless you choose a plan.",
            ),
        ),
        Case(
            "integration",
            (
                "Does Quillpath integrate with {tool}? Our whole team relies on it.",
                "We need {tool} to sync with our projects. Is that possible?",
            ),
            (
                "The {tool} integration is included in the Team and Business plans.",
                "It syncs tasks both ways every few minutes, and setup takes about five minutes from the "
                "Integrations page.",
            ),
        ),
        Case(
            "security",
            (
                "Our IT team at {company} needs to know about SSO and data security before we can buy.",
                "Do you support SSO? {company} requires it for every new tool.",
            ),
            (
                "The Business plan includes SSO with SAML, audit logs and data hosting in the EU or US.",
                "Our security overview and SOC 2 report are ready for the IT team at {company}.",
            ),
        ),
        Case(
            "onboarding",
            (
                "How hard is it to move our projects over from spreadsheets? We have about {projects} of them.",
                "We track {projects} projects in spreadsheets today. Can Quillpath import them?",
            ),
            (
                "Importing {projects} projects from spreadsheets takes an afternoon with our CSV importer.",
                "Our onboarding team checks the column mapping with you first, and most teams are fully moved over "
                "within a week.",
            ),
        ),
        Case(
            "evaluation",
            ("We're also looking at other tools. Why should {company} pick Quillpath?",),
            (
                "Teams pick Quillpath for timelines that stay fast on large projects and setup that takes days, "
                "not weeks.",
                "The best test is a pilot with one of the real projects at {company}.",
            ),
        ),
        Case(
            "follow_up",
            ("Sorry for the slow reply, things have been busy at {company}. We're still interested in Quillpath.",),
            (
                "Your trial workspace for {company} is still there, so the team can pick up right where it left off.",
                "Whenever you're ready, we can plan the rollout together.",
            ),
        ),
    ),
)

BILLING = Profile(
    agent="billing",
    template="billing-v1",
    system=(
        "You are the billing assistant for Quillpath. Answer questions about invoices, payments and plans in a "
        "short email reply. Invoices are issued on the 1st of each month and are due within 30 days."
    ),
    reviewers=("rosa", "ben", "ines"),
    padding=(
        "Please don't hesitate to contact us if you have any further questions.",
        "We truly value your business and appreciate your patience.",
    ),
    non_answers=(
        "Thank you for your message about billing. For all billing questions, please visit our Help Center, where "
        "you can find answers about invoices and payments.",
        "We have received your billing inquiry. Our finance team reviews all requests in the order they arrive "
        "and will respond as soon as possible.",
    ),
    cases=(
        Case(
            "failed_payment",
            (
                "Why did my payment for invoice {invoice} fail? I thought my card was fine.",
                "We got an email that the payment for {invoice} was declined. What happened?",
            ),
            (
                "The card ending in {last4} was declined by your bank when we charged {invoice}.",
                "Update the card under Billing settings and we'll retry the payment automatically within an hour.",
            ),
            bad_news=True,
        ),
        Case(
            "refund",
            (
                "I was charged twice for invoice {invoice}, {amount} each time. Please fix this.",
                "My bank statement shows two charges of {amount} for {invoice}.",
            ),
            (
                "You were charged twice for {invoice} because a failed payment was retried by mistake.",
                "The duplicate charge of {amount} is refunded and will be back on your card within 5 business days.",
            ),
            bad_news=True,
        ),
        Case(
            "invoice",
            (
                "Can you send me a copy of invoice {invoice}? Our accountant needs it.",
                "I can't find invoice {invoice} in my inbox. Could you resend it?",
            ),
            (
                "A PDF copy of {invoice} is on its way to your inbox.",
                "You can also download every past invoice from Billing settings, under Invoices.",
            ),
        ),
        Case(
            "tax",
            (
                "Our VAT number is missing from invoice {invoice}. Can you add it?",
                "Invoice {invoice} doesn't show our company VAT number. Can that be corrected?",
            ),
            (
                "Invoices can't be edited after they're issued, so {invoice} keeps its original details.",
                "Add your VAT number under Billing settings and we'll issue a corrected invoice within one business "
                "day.",
            ),
            bad_news=True,
        ),
        Case(
            "tax",
            ("Why is there sales tax on invoice {invoice}? We're tax exempt.",),
            (
                "Sales tax was added to {invoice} because we don't have an exemption certificate on file for you.",
                "Send us the certificate and we'll refund the {tax} in tax and leave it off future invoices.",
            ),
            bad_news=True,
        ),
        Case(
            "plan_change",
            (
                "We upgraded to the Business plan mid-month. Why is invoice {invoice} higher than expected?",
                "Invoice {invoice} is much higher than usual. Is that because of our upgrade?",
            ),
            (
                "The invoice includes a prorated charge for the upgrade: the Business price for the rest of the "
                "month, minus what you already paid for the Team plan.",
                "From next month it shows just the Business price.",
            ),
        ),
        Case(
            "plan_change",
            (
                "How do we move from the Business plan to the Team plan? We don't use SSO anymore.",
                "Can we downgrade to the Team plan?",
            ),
            (
                "You can switch to the Team plan under Billing settings, then Plan.",
                "The change takes effect at the end of your current billing period, and the next invoice shows the "
                "lower price.",
            ),
        ),
        Case(
            "refund",
            (
                "We cancelled last week. Can we get a refund for the rest of the year on invoice {invoice}?",
                "Is the unused part of invoice {invoice} refundable now that we've cancelled?",
            ),
            (
                "Annual plans aren't refundable for the remaining months, so {invoice} stays as it is.",
                "Your workspace stays fully active until the end of the paid period, and no further invoices will "
                "be issued.",
            ),
            bad_news=True,
        ),
        Case(
            "payment_method",
            (
                "Can we pay by bank transfer instead of credit card?",
                "Our finance team prefers to pay invoices by wire. Is that possible?",
            ),
            (
                "Bank transfer is available on annual plans: choose Pay by invoice under Billing settings.",
                "Each invoice then shows our bank details, and payment is due within 30 days of the invoice date.",
            ),
        ),
        Case(
            "overdue",
            (
                "We received a reminder that invoice {invoice} is overdue. We paid it last week, can you check?",
                "Why is {invoice} marked overdue? Our bank sent the transfer on Monday.",
            ),
            (
                "We haven't received the payment for {invoice} yet; bank transfers can take up to five business "
                "days to reach us.",
                "Send us the transfer confirmation and we'll match it to the invoice and pause the reminders.",
            ),
            bad_news=True,
        ),
        Case(
            "invoice",
            (
                "Can invoices go to our finance team at a different email address?",
                "How do I add our accounts payable team as an invoice recipient?",
            ),
            (
                "Add the finance team's address under Billing settings, then Invoice recipients.",
                "Every new invoice and receipt will go there as well as to you.",
            ),
        ),
        Case(
            "invoice",
            ("Why did invoice {invoice} go up compared to last month? Nothing changed on our side.",),
            (
                "The amount on {invoice} is higher because three new members joined your workspace this month.",
                "You can review who was added under Members and remove anyone who no longer needs access.",
            ),
            bad_news=True,
        ),
    ),
)

PROFILES: dict[str, Profile] = {p.agent: p for p in (SUPPORT, SALES, BILLING)}


# Slots ----------------------------------------------------------------------------------------------------------


def _alternatives(pool: tuple[str, ...]) -> str:
    return "|".join(re.escape(item) for item in sorted(pool, key=len, reverse=True))  # longest first


@dataclass(frozen=True)
class Slot:
    """How a slot's value reads in a message, and how a new one is drawn."""

    pattern: str
    pool: tuple[str, ...] = ()
    low: int = 0
    high: int = 0
    form: str = "{}"

    def draw(self, rng: random.Random, pool: tuple[str, ...] | None = None) -> str:
        if pool or self.pool:
            return rng.choice(pool or self.pool)
        return self.form.format(rng.randint(self.low, self.high))


SLOTS: dict[str, Slot] = {
    "order": Slot(r"\d{5}", low=40000, high=69999),
    "product": Slot(_alternatives(PRODUCTS), PRODUCTS),
    "code": Slot(_alternatives(CODES), CODES),
    "company": Slot(_alternatives(COMPANIES), COMPANIES),
    "seats": Slot(r"\d{1,3}", low=5, high=120),
    "projects": Slot(r"\d{2,3}", low=12, high=240),
    "feature": Slot(_alternatives(FEATURES), FEATURES),
    "tool": Slot(_alternatives(TOOLS), TOOLS),
    "invoice": Slot(r"INV-\d{5}", low=10000, high=99999, form="INV-{}"),
    "amount": Slot(r"\$\d{1,3}(?:,\d{3})*\.\d{2}", low=19, high=2900, form="${:,}.00"),
}
DERIVED = ("carrier", "days", "weeks", "last4", "tax", "annual")  # answer slots read off the message, not asked


def _stable(key: str) -> int:
    """A number fixed by `key` alone (Python's hash() changes between processes)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _derived(name: str, key: str, case: Case, values: Mapping[str, str]) -> str:
    """A fact the answer needs that the message does not give, fixed by the message."""
    number = _stable(f"{name}:{key}")
    if name == "carrier":
        return CARRIERS[number % len(CARRIERS)]
    if name == "days":
        return ("2-3", "3-4", "3-5")[number % 3]
    if name == "weeks":
        return ("two", "three", "four")[number % 3]
    if name == "last4":
        return f"{1000 + number % 9000}"
    if name == "tax":
        return f"${20 + number % 180}.{number // 180 % 100:02d}"
    if name == "annual":
        return f"${int(values['seats']) * case.price * 12:,}"
    raise InvalidInput(f"no derivation for answer slot {name!r}.", hint=f"Use one of: {', '.join(DERIVED)}.")


def slots_of(template: str) -> list[str]:
    """The `{slot}` names of a template, in order, each once."""
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    return list(dict.fromkeys(names))


def _ask_pattern(ask: str) -> re.Pattern[str]:
    """A regex that finds the ask in a message and captures its slots."""
    parts, seen = [], set()
    for literal, name, _, _ in string.Formatter().parse(ask):
        parts.append(re.escape(literal))
        if name:
            parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>{SLOTS[name].pattern})")
            seen.add(name)
    return re.compile("".join(parts))


_PATTERNS: dict[str, list[tuple[Case, re.Pattern[str]]]] = {
    agent: [(case, _ask_pattern(ask)) for case in profile.cases for ask in case.asks]
    for agent, profile in PROFILES.items()
}
_SIGNATURE = re.compile(
    r"(?:\n\n|\s)(?:(?:Thanks|Best),\s*|— )?(?P<name>" + _alternatives((*CUSTOMERS, PERSON_PLACEHOLDER)) + r")\s*$"
)


# Messages and the answers wanted ---------------------------------------------------------------------------------


def profile(agent: str) -> Profile:
    """The demo agent named `agent`; InvalidInput naming the agents there are."""
    found = PROFILES.get(agent)
    if found is None:
        raise InvalidInput(
            f"`agent` {agent!r} is not a demo agent.", hint=f"Use one of: {', '.join(AGENTS)}.", agent=agent
        )
    return found


def compose_message(agent: str, rng: random.Random, *, case: Case | None = None) -> tuple[Case, str]:
    """A customer message to `agent` (of `case`, or of a case drawn from its pool): greeting, ask, contact, name."""
    chosen = case or rng.choice(profile(agent).cases)
    ask = rng.choice(chosen.asks)
    values = {name: SLOTS[name].draw(rng, chosen.choices.get(name)) for name in slots_of(ask)}
    first, last = rng.choice(CUSTOMERS), rng.choice(SURNAMES)
    text = rng.choice(CUSTOMER_GREETINGS) + ask.format(**values)
    if rng.random() < CONTACT_SHARE:
        text += " " + rng.choice(CONTACTS).format(email=_email(first, last, rng), phone=_phone(rng))
    return chosen, text + rng.choice(SIGNATURES).format(name=first)


def _email(first: str, last: str, rng: random.Random) -> str:
    local = rng.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}"))
    return f"{local.lower()}@{rng.choice(('example.com', 'example.org', 'example.net'))}"


def _phone(rng: random.Random) -> str:
    return rng.choice(
        (f"(415) 555-01{rng.randint(0, 99):02d}", f"(312) 555-01{rng.randint(0, 99):02d}",
         f"+44 20 7946 0{rng.randint(0, 999):03d}")
    )  # fmt: skip


@dataclass(frozen=True)
class Parsed:
    """What a customer message says: its case, its slot values (asked and derived) and the customer's name."""

    case: Case
    values: dict[str, str]
    name: str | None
    key: str  # the ask as written: what derived facts are fixed by


def parse(agent: str, message: str) -> Parsed:
    """Read a customer message of `agent` back into its case and facts; InvalidInput for a message not from the pools.

    Only the ask and the signature are read, so redacted contact details change nothing.
    """
    for case, pattern in _PATTERNS[profile(agent).agent]:
        found = pattern.search(message)
        if found is None:
            continue
        values = dict(found.groupdict())
        key = f"{agent}:{found.group(0)}"
        for name in DERIVED:
            if any(name in slots_of(sentence) for sentence in case.answer):
                values[name] = _derived(name, key, case, values)
        signed = _SIGNATURE.search(message, found.end())
        return Parsed(case, values, signed.group("name") if signed else None, key)
    raise InvalidInput(
        f"`prompt` is not one of the demo's {agent} customer messages: {message[:80]!r}.",
        hint="Simulated users know the demo's own messages: use demo.prompts() or the bundled sample's.",
        agent=agent,
    )


@dataclass(frozen=True)
class Parts:
    """A reply in pieces: greeting, the answer's sentences, and the ending the team wants (None: none)."""

    greeting: str
    body: tuple[str, ...]
    ending: str | None

    def text(self) -> str:
        return render(self.greeting, self.body, self.ending)


def render(greeting: str, body: tuple[str, ...], ending: str | None) -> str:
    text = f"{greeting}\n\n{' '.join(body)}"
    return f"{text}\n\n{ending}" if ending else text


def ideal_parts(agent: str, message: str) -> Parts:
    """The reply the agent's team wants to `message`: greeting by name, the answer, and their ending."""
    parsed = parse(agent, message)
    greeting = f"Hi {parsed.name}," if parsed.name else "Hi there,"
    body = tuple(sentence.format(**parsed.values) for sentence in parsed.case.answer)
    return Parts(greeting, body, _ending(agent, parsed))


def _ending(agent: str, parsed: Parsed) -> str | None:
    if agent == "support":
        return SIGN_OFF
    if agent == "sales":
        number = _stable(f"next:{parsed.key}")
        return NEXT_STEP.format(day=WEEKDAYS[number % len(WEEKDAYS)], time=TIMES[number // 7 % len(TIMES)])
    invoice = parsed.values.get("invoice")
    return INVOICE_REFERENCE.format(invoice=invoice) if invoice else None


# Drafts the way the base model writes them ------------------------------------------------------------------------


def _lower_first(sentence: str) -> str:
    return sentence[:1].lower() + sentence[1:]


def habits_possible(agent: str, case: Case, ideal: Parts) -> tuple[str, ...]:
    """The habits a draft of this agent can show for this answer."""
    if agent == "support":
        return ("filler", "no_sign_off", "padding")
    if agent == "sales":
        return ("hedge_opener", "hedge", "vague_ending")
    found = ["padding"]
    if case.bad_news:
        found.append("unfortunately")
    if ideal.ending is not None:
        found.append("no_invoice_reference")
    return tuple(found)


def draw_habits(agent: str, case: Case, ideal: Parts, rng: random.Random, *, at_least_one: bool) -> set[str]:
    """Which habits a draft shows, each with its share in HABIT_SHARES; with `at_least_one`, never none."""
    possible = habits_possible(agent, case, ideal)
    shown = {habit for habit in possible if rng.random() < HABIT_SHARES[habit]}
    if at_least_one and not shown:
        main = [h for h in possible if h != "padding"] or list(possible)
        shown.add(rng.choice(main))
    return shown


def flawed_draft(agent: str, ideal: Parts, habits: set[str], rng: random.Random) -> str:
    """The ideal reply as the base model would draft it, showing `habits`."""
    body = list(ideal.body)
    ending = ideal.ending
    if "unfortunately" in habits:
        body[0] = f"{UNFORTUNATELY} {_lower_first(body[0])}"
    if "hedge" in habits:
        body[0] = f"{HEDGE} {_lower_first(body[0])}"
    if "filler" in habits:
        body.insert(0, rng.choice(FILLERS))
    if "hedge_opener" in habits:
        body.insert(0, rng.choice(HEDGE_OPENERS))
    if "padding" in habits:
        body.append(rng.choice(PROFILES[agent].padding))
    if "no_sign_off" in habits:
        ending = rng.choice((None, *SUPPORT_CLOSERS))
    if "vague_ending" in habits:
        ending = rng.choice(VAGUE_ENDINGS)
    if "no_invoice_reference" in habits:
        ending = None
    return render(ideal.greeting, tuple(body), ending)


def wrong_draft(agent: str, case: Case, ideal: Parts, rng: random.Random) -> str:
    """A draft the team rejects: an answer to another question, or to none."""
    agent_profile = profile(agent)
    if rng.random() < NON_ANSWER_SHARE:
        return render(ideal.greeting, (rng.choice(agent_profile.non_answers),), None)
    other = rng.choice([c for c in agent_profile.cases if c is not case])
    _, message = compose_message(agent, rng, case=other)
    wrong = ideal_parts(agent, message)
    wrong = Parts(ideal.greeting, wrong.body, wrong.ending)
    return flawed_draft(agent, wrong, draw_habits(agent, other, wrong, rng, at_least_one=False), rng)


# The bundled events -----------------------------------------------------------------------------------------------


def generate_events(seed: int = 0) -> list[dict[str, Any]]:
    """The demo's sample feedback events, in time order: the same seed gives the same events."""
    rng = random.Random(seed)
    events = []
    for agent in AGENTS:
        outcomes = [outcome for outcome, count in MIX.items() for _ in range(count * EVENTS_PER_AGENT // 100)]
        rng.shuffle(outcomes)
        events += [_event(agent, outcome, rng) for outcome in outcomes]
    events.sort(key=lambda event: event["created_at"])
    return [{"id": f"demo-{number:04d}", **event} for number, event in enumerate(events, start=1)]


def _event(agent: str, outcome: str, rng: random.Random) -> dict[str, Any]:
    agent_profile = profile(agent)
    case, message = compose_message(agent, rng)
    ideal = ideal_parts(agent, message)
    wanted = ideal.text()
    final: str | None
    if outcome == "accepted":
        draft, final = wanted, (wanted if rng.random() < FINAL_ON_ACCEPT else None)
        rating: int | str = rng.choices((5, 4, "up"), weights=(6, 3, 2))[0]
    elif outcome == "edited":
        draft, final = flawed_draft(agent, ideal, draw_habits(agent, case, ideal, rng, at_least_one=True), rng), wanted
        rating = rng.choices((4, 3), weights=(3, 2))[0]
    else:
        draft, final = wrong_draft(agent, case, ideal, rng), wanted
        rating = rng.choices((1, 2, "down"), weights=(4, 3, 2))[0]
    event: dict[str, Any] = {
        "agent": agent,
        "intent": case.intent,
        "messages": [{"role": "system", "content": agent_profile.system}, {"role": "user", "content": message}],
        "output": draft,
    }
    if final is not None:
        event["final"] = final
    event |= {
        "rating": rating,
        "template": agent_profile.template,
        "model": MODEL,
        "user": rng.choice(agent_profile.reviewers),
        "latency_ms": max(400, round(rng.gauss(1400, 350))),
        "created_at": _moment(rng),
    }
    return event


def _moment(rng: random.Random) -> str:
    """A time in the DAYS days before END: more on workdays, in working hours."""
    days = [END - timedelta(days=back) for back in range(DAYS, 0, -1)]
    day = rng.choices(days, weights=[WEEKDAY_WEIGHTS[d.weekday()] for d in days])[0]
    hour = rng.choices(list(HOUR_WEIGHTS), weights=list(HOUR_WEIGHTS.values()))[0]
    moment = day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def to_jsonl(events: list[dict[str, Any]]) -> str:
    """The events as the bundled file holds them: one JSON object a line."""
    return "".join(json.dumps(event, ensure_ascii=False) + "\n" for event in events)


def sample_path() -> Path:
    """The bundled sample feedback file (JSONL, the ingest format of `core.data.fields`)."""
    return Path(__file__).with_name("feedback.jsonl")


def write_sample(path: Path | None = None) -> Path:
    """Write the generator's events (seed 0) to `path`, the bundled file by default; returns the path."""
    target = path or sample_path()
    target.write_text(to_jsonl(generate_events()), encoding="utf-8")
    return target
