/* The word task's vocabulary: 254 common English words, written for
 * this suite (no corpus can be downloaded here). Chosen so that a listener
 * who hears one word in isolation can type it unambiguously: no homophone
 * pairs (there/their, right/write, no/know), no heteronyms whose sound
 * depends on meaning (read, close, live, lead, wind), mostly one to three
 * syllables, all spelled in lower case a-z. Sorted, so a word's index is
 * its rank in this list. */
#include <string.h>

#include "stim_internal.h"

static const char *const vocabulary[] = {
    "about", "above", "across", "after", "again", "against", "almost", "along", "also",
    "always", "animal", "answer", "apple", "around", "baby", "back", "bad", "ball", "bank",
    "beautiful", "because", "bed", "before", "begin", "behind", "best", "better",
    "between", "big", "bird", "black", "blue", "boat", "body", "book", "both", "box",
    "boy", "bread", "bring", "brother", "brown", "build", "business", "call", "came",
    "car", "care", "carry", "catch", "chair", "change", "child", "city", "class", "clean",
    "cold", "color", "come", "company", "could", "country", "cup", "dark", "daughter",
    "day", "different", "dinner", "doctor", "dog", "door", "down", "dream", "drink",
    "drive", "early", "earth", "easy", "eat", "enough", "evening", "every", "eye", "face",
    "family", "far", "farm", "father", "feel", "field", "find", "fire", "fish", "floor",
    "flower", "follow", "food", "foot", "forest", "friend", "front", "full", "game",
    "garden", "girl", "give", "glass", "go", "good", "government", "great", "green",
    "ground", "group", "grow", "hand", "happy", "hard", "have", "head", "heart", "heavy",
    "help", "hill", "history", "hold", "home", "horse", "hospital", "hot", "house",
    "hundred", "idea", "important", "inside", "island", "job", "just", "keep", "kitchen",
    "land", "language", "large", "last", "late", "laugh", "learn", "leave", "letter",
    "life", "light", "listen", "little", "long", "look", "love", "machine", "man", "many",
    "market", "money", "month", "morning", "mother", "mountain", "move", "music", "name",
    "nation", "nature", "never", "next", "night", "number", "ocean", "office", "often",
    "open", "orange", "other", "paper", "party", "people", "person", "picture", "place",
    "plant", "play", "please", "point", "power", "problem", "question", "quick", "rain",
    "ready", "really", "remember", "river", "road", "room", "run", "school", "second",
    "seven", "should", "show", "simple", "sister", "small", "snow", "something", "song",
    "sound", "speak", "special", "spring", "start", "station", "story", "street", "strong",
    "student", "study", "summer", "system", "table", "teacher", "thing", "think",
    "thousand", "today", "together", "tomorrow", "tree", "under", "until", "village",
    "visit", "voice", "walk", "wall", "want", "warm", "watch", "water", "weather",
    "window", "winter", "without", "woman", "world", "yellow", "young",
};

#define N_VOCAB ((int)(sizeof vocabulary / sizeof vocabulary[0]))

int stimuli_vocabulary_size(void) { return N_VOCAB; }

const char *stimuli_vocabulary_word(int i) { return i >= 0 && i < N_VOCAB ? vocabulary[i] : NULL; }

int stimuli_vocabulary_index(const char *word) {
    int lo = 0, hi = N_VOCAB - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(word, vocabulary[mid]);
        if (c == 0) return mid;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

/* The first n words in a fixed pseudo-random order (by hash), returned in
 * vocabulary order. A smaller recipe's words are therefore always a subset
 * of a larger one's, whatever the seed, so a model trained on `train`
 * knows every word of `demo`, `tiny` and `experiment`. */
int vocabulary_select(int n, int *out) {
    if (n > N_VOCAB) n = N_VOCAB;
    int order[N_VOCAB];
    uint64_t key[N_VOCAB];
    for (int i = 0; i < N_VOCAB; i++) order[i] = i, key[i] = hash_str(vocabulary[i]);
    for (int i = 1; i < N_VOCAB; i++) /* insertion sort by key: 254 items */
        for (int j = i; j > 0 && key[order[j]] < key[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    char chosen[N_VOCAB] = {0};
    for (int i = 0; i < n; i++) chosen[order[i]] = 1;
    int k = 0;
    for (int i = 0; i < N_VOCAB; i++)
        if (chosen[i]) out[k++] = i;
    return k;
}
