import { randomInt } from "node:crypto";

const ADJECTIVES = [
  "able", "amber", "brave", "bright", "calm", "clever", "cosmic", "crisp", "daring", "eager",
  "fancy", "fast", "fierce", "gentle", "glad", "golden", "grand", "happy", "hardy", "honest",
  "humble", "jolly", "keen", "kind", "lively", "lucky", "mellow", "merry", "mighty", "neat",
  "nimble", "noble", "patient", "plucky", "polite", "proud", "quick", "quiet", "rapid", "ready",
  "robust", "rustic", "shiny", "silent", "smart", "snappy", "solid", "steady", "sunny", "swift",
  "tidy", "tough", "trusty", "vivid", "warm", "wise", "witty", "zesty", "bold", "cheery",
];

const NOUNS = [
  "otter", "falcon", "badger", "beaver", "bison", "cobra", "condor", "coyote", "crane", "dingo",
  "dolphin", "eagle", "ferret", "finch", "fox", "gecko", "heron", "ibis", "jackal", "jaguar",
  "koala", "lemur", "lion", "lynx", "marmot", "mink", "moose", "newt", "ocelot", "orca",
  "osprey", "panda", "parrot", "pelican", "puffin", "quail", "raven", "robin", "salmon", "seal",
  "shark", "sloth", "sparrow", "stork", "swan", "tapir", "tiger", "toucan", "trout", "turtle",
  "viper", "walrus", "weasel", "whale", "wolf", "wombat", "yak", "zebra", "hare", "owl",
];

type RandomIndex = (maxExclusive: number) => number;

/** A two-word name such as `brave-otter` (upstream uses petnames the same way). */
export function generateSandboxName(random: RandomIndex = randomInt): string {
  return `${ADJECTIVES[random(ADJECTIVES.length)]}-${NOUNS[random(NOUNS.length)]}`;
}

/** Six random lowercase letters: the fallback name and the SSH session name. */
export function randomLetters(count = 6, random: RandomIndex = randomInt): string {
  let out = "";
  for (let i = 0; i < count; i++) out += String.fromCharCode(97 + random(26));
  return out;
}
